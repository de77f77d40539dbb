/*
 * chunk — how a piece of a tensor travels between tasks: a packed pstrain.TensorChunk header
 * (key, dtype, shape, total bytes, offset) followed by its field 15, the data. Putting the
 * data last lets the sender hand the tensor's own memory to the transport (no copy into a
 * message buffer) and the receiver copy it straight from the transport's buffers into the
 * destination tensor.
 *
 *     pst_msg m;
 *     pst_chunk_msg("w", t, 0, t->nbytes, &m, &st);           // m holds a reference to t
 *     ... on the receiving side, with the message's segments v[0..n):
 *     pst_chunk_cursor c; uint64_t len; pst_shape shape;
 *     Pstrain__TensorChunk *h = pst_chunk_parse(v, n, &c, &len, &st);
 *     if (h && pst_chunk_check(h, len, &shape, &st) == 0) pst_chunk_take(&c, dst + h->offset, len);
 *     pst_chunk_header_free(h);
 */
#ifndef PST_CHUNK_H
#define PST_CHUNK_H

#include <stdint.h>

#include "pstrain_task.pb-c.h"
#include "status.h"
#include "tensor.h"
#include "transport.h"

/* A read position in a message made of segments. */
typedef struct pst_chunk_cursor {
    const pst_iov *v;
    int n, i;
    size_t off;
} pst_chunk_cursor;

/* The message for bytes [off, off + len) of t under key into *out; takes a reference to t that
 * the message's release drops. Returns 0, or PST_E_EXHAUSTED naming the key (out is then an
 * empty message) when out of memory. */
int pst_chunk_msg(const char *key, pst_tensor *t, uint64_t off, uint64_t len, pst_msg *out,
                  pst_status *st);
/* Unpacks the header of a received chunk and leaves *c at its data (*data_len bytes). NULL
 * with st set when the message is malformed. Free the header with pst_chunk_header_free. */
Pstrain__TensorChunk *pst_chunk_parse(const pst_iov *v, int n, pst_chunk_cursor *c,
                                      uint64_t *data_len, pst_status *st);
/* Checks the header against itself (dtype, rank, total = shape bytes, the range inside);
 * fills *shape. Errors name the tensor's key. */
int pst_chunk_check(const Pstrain__TensorChunk *h, uint64_t len, pst_shape *shape,
                    pst_status *st);
/* Copies n bytes at the cursor to dst (NULL: skips them); -1 if the message is shorter. */
int pst_chunk_take(pst_chunk_cursor *c, void *dst, size_t n);
/* A chunk that is a whole tensor (offset 0, len = total bytes) whose data the transport
 * offers whole (pst_iov.own): a new tensor of dtype and shape on that very memory, the cursor
 * moved past it. NULL when the data cannot be taken so (the caller copies it with
 * pst_chunk_take instead) or on error (st set). */
pst_tensor *pst_chunk_adopt(pst_chunk_cursor *c, const Pstrain__TensorChunk *h, pst_shape shape,
                            uint64_t len, pst_status *st);
void pst_chunk_header_free(Pstrain__TensorChunk *h);

#endif
