/*
 * transport — moves request and response bytes between tasks. It knows nothing of tensors or
 * graphs: the task service (task.h) encodes its messages and calls methods by index into the
 * method table the transport was created with. Implementations: gRPC (processes, any host;
 * transport_grpc.c) and in-process (unit tests; one address space); MPI slots in as a third.
 *
 * Messages are lists of byte segments so a tensor can travel without being copied into a
 * buffer first: the transport borrows the segments until it calls the message's release
 * function. Received messages are handed over as segments valid during the callback only,
 * except a segment the transport offers to hand over whole (pst_iov.own: the MPI transport
 * receives a message's large last segment into a block of its own, which a receiver may keep
 * as a tensor's memory instead of copying it).
 *
 *     static const char *methods[] = {"/pstrain.Task/Echo"};
 *     pst_transport *t = pst_transport_grpc_new(methods, 1, NULL, &st);
 *     pst_transport_serve(t, "127.0.0.1:0", handler, ctx, bound, sizeof bound, &st);
 *     ...  in handler: pst_transport_reply(t, call, NULL, &response_msg);
 *     pst_transport_call_sync(t, bound, 0, &req, 5000, 0, &resp, &resp_len, &st);
 *
 * Every call has a deadline. Errors name the address of the task at fault.
 */
#ifndef PST_TRANSPORT_H
#define PST_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "status.h"

typedef struct pst_iov {
    const void *base;
    size_t len;
    /* Received segments only, NULL otherwise: when set, the segment is a whole block of
     * pst_aligned_alloc memory starting at base that the receiver may keep instead of copying
     * it (pst_iov_take); the transport frees it after the callback unless it was taken. */
    void **own;
} pst_iov;

/* Takes a received segment's block (see pst_iov.own): the caller now owns base and frees it
 * with pst_aligned_free (or hands it to pst_tensor_adopt). NULL when the segment cannot be
 * taken (not offered by the transport, or taken already). */
static inline void *pst_iov_take(const pst_iov *v) {
    if (!v->own || !*v->own) return NULL;
    void *p = *v->own;
    *v->own = NULL;
    return p;
}

#define PST_MSG_MAX_SEGS 4

/* An outgoing message. The transport borrows seg[] memory until it calls release(owner) (once,
 * possibly from another thread; release may be NULL). */
typedef struct pst_msg {
    int n;
    pst_iov seg[PST_MSG_MAX_SEGS];
    void (*release)(void *owner);
    void *owner;
} pst_msg;

/* Client completion: st is NULL on success; resp[0..n) is valid during the callback only. */
typedef void (*pst_call_done_fn)(void *arg, const pst_status *st, const pst_iov *resp, int n);

typedef struct pst_server_call pst_server_call; /* one arrived call awaiting its reply */

/* Server handler: runs on a transport thread with the request's segments (valid during the
 * handler only). It must call pst_transport_reply exactly once, now or later from any thread;
 * it should not block for long (hand long work to a thread of its own). */
typedef void (*pst_handler_fn)(void *arg, pst_server_call *call, int method, const pst_iov *req,
                               int n);

/* Call flags. WAIT_FOR_READY: while the peer is not reachable yet, keep retrying (with backoff)
 * until the call's deadline instead of failing at once: use it while a job starts up. */
enum { PST_CALL_WAIT_FOR_READY = 1 };

typedef struct pst_transport pst_transport;

typedef struct pst_transport_ops {
    const char *name;
    int (*serve)(pst_transport *t, const char *addr, pst_handler_fn h, void *arg, char *bound,
                 size_t bound_len, pst_status *st);
    /* Always ends in exactly one done() call, even when it fails at once. */
    void (*call)(pst_transport *t, const char *addr, int method, pst_msg *req, int64_t timeout_ms,
                 int flags, pst_call_done_fn done, void *arg);
    void (*reply)(pst_transport *t, pst_server_call *call, const pst_status *st, pst_msg *resp);
    void (*stop)(pst_transport *t);
    void (*free)(pst_transport *t);
    /* Optional: where a call being served comes from ("ipv4:127.0.0.1:40512"), for errors
     * and logs that name the sender. */
    void (*peer)(pst_transport *t, pst_server_call *call, char *out, size_t len);
} pst_transport_ops;

struct pst_transport {
    const pst_transport_ops *ops;
    const char *const *methods;
    int n_methods;
};

struct pst_security; /* security.h */

typedef struct pst_transport_opts {
    int64_t keepalive_ms;       /* ping a connection this often (default 3000) */
    int64_t keepalive_timeout_ms; /* a ping unanswered this long kills the connection (3000) */
    int server_threads;         /* threads polling the server's queue (default 2) */
    int requests_per_method;    /* calls of one method the server accepts at once (default 16) */
    /* The job's token and TLS material (borrowed, must outlive the transport). With a token,
     * every call carries it and the server refuses calls without it (UNAUTHENTICATED) before
     * any handler runs; with TLS, connections are mutual TLS. NULL: cleartext, no check (unit
     * tests of the transport alone; tasks always pass one). */
    const struct pst_security *security;
} pst_transport_opts;

/* Methods are borrowed for the transport's lifetime; names are gRPC paths "/pkg.Svc/Method". */
pst_transport *pst_transport_grpc_new(const char *const *methods, int n_methods,
                                      const pst_transport_opts *o, pst_status *st);
/* In-process transport: addresses name servers in a table shared by the whole process; a call
 * runs the handler on the caller's thread. Deadlines are not enforced. */
pst_transport *pst_transport_inproc_new(const char *const *methods, int n_methods);

/* Serves h(arg, ...) for every method on addr ("host:port", port 0 picks a free one); the
 * address actually bound is written to bound. One server per transport. */
static inline int pst_transport_serve(pst_transport *t, const char *addr, pst_handler_fn h,
                                      void *arg, char *bound, size_t bound_len, pst_status *st) {
    return t->ops->serve(t, addr, h, arg, bound, bound_len, st);
}
/* Starts method on the task at addr; timeout_ms <= 0 means no deadline (avoid). */
static inline void pst_transport_call(pst_transport *t, const char *addr, int method,
                                      pst_msg *req, int64_t timeout_ms, int flags,
                                      pst_call_done_fn done, void *arg) {
    t->ops->call(t, addr, method, req, timeout_ms, flags, done, arg);
}
/* Answers a call: st NULL (or code 0) sends resp (may be NULL: empty); otherwise the error. */
static inline void pst_transport_reply(pst_transport *t, pst_server_call *call,
                                       const pst_status *st, pst_msg *resp) {
    t->ops->reply(t, call, st, resp);
}
/* The address a served call comes from ("in-process" or "?" when the transport cannot say). */
static inline void pst_transport_peer(pst_transport *t, pst_server_call *call, char *out,
                                      size_t len) {
    if (t->ops->peer) t->ops->peer(t, call, out, len);
    else snprintf(out, len, "%s", strcmp(t->ops->name, "inproc") == 0 ? "in-process" : "?");
}
/* Stops serving: new calls fail, arrived calls are cancelled; returns once every arrived call
 * has been replied to. */
static inline void pst_transport_stop(pst_transport *t) { t->ops->stop(t); }
void pst_transport_free(pst_transport *t);

/* Blocking call: *resp (malloc'd, caller frees; may be NULL when empty) gets the response
 * bytes. Returns 0 or the call's error. */
int pst_transport_call_sync(pst_transport *t, const char *addr, int method, pst_msg *req,
                            int64_t timeout_ms, int flags, uint8_t **resp, size_t *resp_len,
                            pst_status *st);

/* A message of one borrowed segment (no release). */
pst_msg pst_msg_of(const void *p, size_t len);
/* Copies segments [0, n) into one buffer; returns malloc'd memory (NULL when total is 0). */
uint8_t *pst_iov_flatten(const pst_iov *v, int n, size_t *len);
size_t pst_iov_total(const pst_iov *v, int n);

/* A set of calls in flight that the caller waits for together (used for chunked transfers
 * and for running a step's partitions). The group owns everything its calls' completions
 * touch, so a caller may stop waiting only by freeing it (which waits). The first error is
 * kept. */
typedef struct pst_call_group pst_call_group;
/* NULL when out of memory. */
pst_call_group *pst_call_group_new(void);
/* on_error(arg, st) runs once, for the first call that fails, on the thread completing it and
 * before pst_call_group_wait returns (a step aborts its other parts there). Set it before
 * starting calls. */
void pst_call_group_on_error(pst_call_group *g, void (*on_error)(void *arg, const pst_status *st),
                             void *arg);
/* Starts a call counted in the group; on completion on_resp (may be NULL) sees the response. */
void pst_call_group_start(pst_call_group *g, pst_transport *t, const char *addr, int method,
                          pst_msg *req, int64_t timeout_ms, int flags,
                          void (*on_resp)(void *arg, const pst_iov *resp, int n), void *arg);
/* Waits until every call started so far completed; returns 0 or the first error. */
int pst_call_group_wait(pst_call_group *g, pst_status *st);
void pst_call_group_free(pst_call_group *g);

#endif
