/*
 * rendezvous — where Send and Recv meet. A Send deposits a tensor under a key; the Recv with
 * the same key takes it (waiting up to a deadline). Keys name the edge and the step:
 * "<send_device>;<recv_device>;<tensor_name>;<step_id>" (pst_rendezvous_key).
 *
 * The interface is a vtable so the distributed runtime can route a Send whose receiver is in
 * another process over the transport; the local implementation is a table with a condition
 * variable, used within a process (and by a task for tensors other tasks push to it).
 *
 *     pst_rendezvous *r = pst_rendezvous_local_new();
 *     pst_session_opts so = {.exec = r};      // Send/Recv kernels find it in ctx->exec
 */
#ifndef PST_RENDEZVOUS_H
#define PST_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef struct pst_rendezvous pst_rendezvous;

typedef struct pst_rendezvous_ops {
    /* Deposits t under key (takes a new reference). */
    int (*send)(pst_rendezvous *r, const char *key, pst_tensor *t, pst_status *st);
    /* Waits up to timeout_ms for key; *out gets the caller's reference. Errors name the key. */
    int (*recv)(pst_rendezvous *r, const char *key, int64_t timeout_ms, pst_tensor **out,
                pst_status *st);
    /* Fails every current and future recv with why (a peer died, the job is stopping). */
    void (*abort)(pst_rendezvous *r, const pst_status *why);
    void (*free)(pst_rendezvous *r);
} pst_rendezvous_ops;

struct pst_rendezvous {
    const pst_rendezvous_ops *ops;
};

pst_rendezvous *pst_rendezvous_local_new(void);
static inline int pst_rendezvous_send(pst_rendezvous *r, const char *key, pst_tensor *t,
                                      pst_status *st) {
    return r->ops->send(r, key, t, st);
}
static inline int pst_rendezvous_recv(pst_rendezvous *r, const char *key, int64_t timeout_ms,
                                      pst_tensor **out, pst_status *st) {
    return r->ops->recv(r, key, timeout_ms, out, st);
}
static inline void pst_rendezvous_abort(pst_rendezvous *r, const pst_status *why) {
    r->ops->abort(r, why);
}
void pst_rendezvous_free(pst_rendezvous *r);
/* Takes back a local rendezvous' abort: recvs wait again (a caller that decided the failed
 * step was not fatal, with no step of it still running). Tensors deposited stay. */
void pst_rendezvous_local_resume(pst_rendezvous *r);
/* Number of tensors deposited and not yet taken (for tests and leak checks). */
size_t pst_rendezvous_local_pending(pst_rendezvous *r);

/* Writes the key of an edge for a step into buf. */
const char *pst_rendezvous_key(const char *send_device, const char *recv_device,
                               const char *tensor_name, int64_t step_id, char *buf, size_t len);

#endif
