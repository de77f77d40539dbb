/*
 * ops_queue — TensorFlow 1.x's input queues (FIFOQueueV2, RandomShuffleQueueV2,
 * PaddingFIFOQueueV2 and their TF 0.x ref-handle names) and the ops that use them
 * (QueueEnqueue[Many]V2, QueueDequeue[Many|UpTo]V2, QueueCloseV2, QueueSizeV2,
 * QueueIsClosedV2), plus RandomShuffle, DecodeRaw and CountUpTo (an epoch counter's limit:
 * OutOfRange once reached), which input pipelines use.
 *
 * A queue is a resource of the session's variable store, named by its node (or its
 * `shared_name`), so it lives as long as the variables and every run of the session (queue
 * runner threads and the training step) sees the same one. The queue node outputs a
 * PST_RESOURCE handle pointing at it. An element is a tuple of one tensor per component.
 *
 * TensorFlow's semantics:
 *   - enqueues block while the queue holds `capacity` elements (capacity <= 0: unbounded);
 *   - dequeues block until enough elements are there; a RandomShuffleQueue keeps at least
 *     `min_after_dequeue` elements after a dequeue (so it mixes) until it is closed, and
 *     returns a uniformly random element;
 *   - close: later enqueues fail with PST_E_CANCELLED; with cancel_pending_enqueues, blocked
 *     enqueues fail the same way, otherwise they still complete when room appears; blocked
 *     and later dequeues succeed while enough elements remain and then fail with
 *     PST_E_OUT_OF_RANGE ("closed and has insufficient elements"); DequeueUpTo on a closed
 *     queue returns what is left (at least one);
 *   - DequeueMany / DequeueUpTo stack elements along a new first dimension (a PaddingFIFOQueue
 *     pads components of unknown dims with zeros, or empty strings, to the batch's largest).
 *
 * Other layers (the io layer's readers) reach a queue through its handle:
 *
 *     pst_queue *q = pst_queue_from_handle(handle_tensor, &st);
 *     pst_tensor *name;
 *     if (pst_queue_dequeue_one(q, &name, &st) < 0) ...   // blocks; OutOfRange when closed
 */
#ifndef PST_OPS_QUEUE_H
#define PST_OPS_QUEUE_H

#include "graph.h"
#include "status.h"
#include "tensor.h"

typedef struct pst_queue pst_queue;

/* The queue a PST_RESOURCE handle tensor made by a queue op points at (borrowed: the session's
 * variable store owns it), or NULL with st set. */
pst_queue *pst_queue_from_handle(const pst_tensor *handle, pst_status *st);
/* Dequeues one element of a one-component queue (a filename queue): *out receives a new
 * reference. Blocks until an element is there or the queue is closed (then
 * PST_E_OUT_OF_RANGE naming the queue). */
int pst_queue_dequeue_one(pst_queue *q, pst_tensor **out, pst_status *st);
/* Closes the queue (see above). */
void pst_queue_close(pst_queue *q, int cancel_pending_enqueues);
/* Elements held now. */
int64_t pst_queue_size(pst_queue *q);
/* The queue's name (its node's, or shared_name). */
const char *pst_queue_name(const pst_queue *q);

/* For ops making resources (queues here, readers in the io layer): a new PST_RESOURCE scalar
 * pointing at p (NULL when out of memory), and the shape function of such an op (output 0 a
 * resource scalar). */
pst_tensor *pst_ops_resource_handle(void *p);
int pst_ops_resource_shape(pst_node *n, pst_status *st);

#endif
