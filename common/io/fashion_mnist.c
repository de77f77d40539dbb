/* fashion_mnist: the Fashion-MNIST IDX files as tensors (see fashion_mnist.h). */
#include "fashion_mnist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "example.h"
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

int pst_data_format_parse(const char *s) {
    if (s && strcmp(s, "idx") == 0) return PST_DATA_IDX;
    if (s && strcmp(s, "tfrecord") == 0) return PST_DATA_TFRECORD;
    return -1;
}

/* The kind of the "image" feature of the file's first record (an empty file: bytes). */
static int image_kind(const char *path, pst_example_kind *kind, pst_status *st) {
    *kind = PST_EXAMPLE_BYTES;
    pst_tfrecord_reader *r = pst_tfrecord_reader_open(path, NULL, st);
    if (r == NULL) return st->code;
    const uint8_t *rec;
    size_t len;
    int rc = pst_tfrecord_reader_next(r, &rec, &len, st);
    if (rc == 1) {
        pst_example *ex = pst_example_new();
        rc = ex ? pst_example_parse(ex, rec, len, st) : pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        const pst_example_feature *f = rc == 0 ? pst_example_find(ex, "image") : NULL;
        if (rc == 0 && f == NULL)
            rc = pst_status_set(st, PST_E_INVALID, "%s: record 0 has no feature 'image'", path);
        else if (rc < 0)
            pst_status_prefix(st, "%s: record 0: ", path);
        if (f) *kind = f->kind;
        pst_example_free(ex);
    }
    pst_tfrecord_reader_free(r);
    return rc < 0 ? rc : 0;
}

static int load_tfrecord(const char *dir, const char *which, pst_tensor **images,
                         pst_tensor **labels, pst_status *st) {
    static const char *const suffixes[] = {"", ".gz", ".zlib"};
    char path[4096] = "";
    const char *base = dir ? dir : ".";
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s.tfrecord%s", base, which, suffixes[i]);
        if (access(path, F_OK) == 0) break;
        if (i == 2)
            return pst_status_set(st, PST_E_NOT_FOUND, "%s/%s.tfrecord (or .gz, .zlib) does not "
                                  "exist (pstrain data convert --from idx --to tfrecord --out %s "
                                  "writes it)", base, which, base);
    }
    pst_example_kind kind;
    int rc = image_kind(path, &kind, st);
    if (rc < 0) return rc;
    pst_shape img = pst_shape_make(3, (int64_t[]){28, 28, 1});
    pst_example_spec specs[2] = {{"image", kind == PST_EXAMPLE_FLOAT ? PST_FLOAT : PST_UINT8, img},
                                 {"label", PST_INT64, pst_shape_scalar()}};
    pst_tensor *t[2];
    if ((rc = pst_example_load_tfrecord(path, NULL, specs, 2, t, st)) < 0) return rc;
    if (kind == PST_EXAMPLE_FLOAT) { /* back to the bytes the graph scales by 1/255 */
        pst_tensor *u = pst_tensor_new(PST_UINT8, t[0]->shape, st);
        if (u == NULL) {
            pst_tensor_unref(t[0]);
            pst_tensor_unref(t[1]);
            return st->code;
        }
        const float *src = pst_tensor_f32(t[0]);
        for (int64_t i = 0; i < u->n; i++) {
            float v = src[i] * 255.0f + 0.5f;
            pst_tensor_u8(u)[i] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
        }
        pst_tensor_unref(t[0]);
        t[0] = u;
    }
    *images = t[0];
    *labels = t[1];
    return 0;
}

int pst_fashion_mnist_load_format(const char *dir, const char *which, pst_data_format format,
                                  pst_tensor **images, pst_tensor **labels, pst_status *st) {
    *images = *labels = NULL;
    if (format == PST_DATA_TFRECORD) return load_tfrecord(dir, which, images, labels, st);
    return load(dir, which, 0, images, labels, st);
}
