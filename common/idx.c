#include "idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static int read_all(gzFile f, void *buf, size_t n) {
    size_t off = 0;
    while (off < n) {
        unsigned chunk = n - off > (1u << 30) ? (1u << 30) : (unsigned)(n - off);
        int r = gzread(f, (char *)buf + off, chunk);
        if (r <= 0) return -1;
        off += (size_t)r;
    }
    return 0;
}

int pst_idx_read(const char *path, pst_tensor **out, pst_status *st) {
    *out = NULL;
    if (access(path, R_OK) != 0)
        return pst_status_set(st, PST_E_NOT_FOUND, "cannot open %s: %s", path, strerror(errno));
    gzFile f = gzopen(path, "rb"); /* reads plain files too */
    if (f == NULL) return pst_status_set(st, PST_E_IO, "cannot open %s", path);
    int rc = 0;
    unsigned char hdr[4];
    if (read_all(f, hdr, 4) < 0) {
        rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: file too short for an IDX header", path);
        goto out;
    }
    if (hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08 || hdr[3] < 1 || hdr[3] > PST_MAX_RANK) {
        rc = pst_status_set(st, PST_E_DATA_LOSS,
                            "%s: bad IDX magic %02x%02x%02x%02x (expected unsigned-byte data, "
                            "0x0000080N)", path, hdr[0], hdr[1], hdr[2], hdr[3]);
        goto out;
    }
    pst_shape s = {.rank = hdr[3]};
    int64_t n = 1;
    for (int i = 0; i < s.rank; i++) {
        unsigned char d[4];
        if (read_all(f, d, 4) < 0) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: truncated IDX header", path);
            goto out;
        }
        s.dims[i] = ((int64_t)d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3];
        if (pst_mul_overflow_i64(n, s.dims[i], &n) || n > (1LL << 32)) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: IDX dims are implausibly large", path);
            goto out;
        }
    }
    pst_tensor *t = pst_tensor_new(PST_UINT8, s, st);
    if (t == NULL) {
        rc = st ? st->code : PST_E_EXHAUSTED;
        goto out;
    }
    if (read_all(f, t->data, t->nbytes) < 0) {
        pst_tensor_unref(t);
        rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: truncated: the header promises %lld bytes",
                            path, (long long)n);
        goto out;
    }
    *out = t;
out:
    gzclose(f);
    return rc;
}

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
