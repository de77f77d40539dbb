/*
 * idx — MNIST's IDX format (gzip-compressed or plain).
 *
 *     pst_tensor *t;
 *     pst_idx_read("train-images-idx3-ubyte.gz", &t, &st);   // uint8 with the file's dims
 */
#ifndef PST_IDX_H
#define PST_IDX_H

#include "status.h"
#include "tensor.h"

/* Reads an IDX file of unsigned bytes into a uint8 tensor with the file's dims. Errors name the
 * path: missing or non-regular file, bad magic, dims that do not match the data, truncation.
 * The header's promise is checked before anything is allocated: a plain file must hold exactly
 * the bytes its dims multiply to; a gzip file may not promise more than its compressed size
 * can hold, and is read piece by piece, memory growing only with the data that arrives. */
int pst_idx_read(const char *path, pst_tensor **out, pst_status *st);

#endif
