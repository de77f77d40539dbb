/* _Send and _Recv: the two ends of an edge that crosses tasks (see partition.h). Both find
 * the rendezvous in ctx->exec and key the tensor by edge and step. */
#include <stdio.h>
#include <string.h>

#include "op.h"
#include "rendezvous.h"

#define PST_RECV_TIMEOUT_MS_DEFAULT 30000

static const char *key_of(const pst_kernel_ctx *c, char *buf, size_t len) {
    return pst_rendezvous_key(pst_kctx_attr_s(c, "send_device", ""),
                              pst_kctx_attr_s(c, "recv_device", ""),
                              pst_kctx_attr_s(c, "tensor_name", ""), c->step_id, buf, len);
}

static int send_kernel(pst_kernel_ctx *c) {
    char key[1024];
    if (c->exec == NULL)
        return pst_kctx_error(c, PST_E_PRECONDITION, "no rendezvous: run partitions in a task");
    return pst_rendezvous_send(c->exec, key_of(c, key, sizeof key), c->inputs[0], c->status);
}

static int recv_kernel(pst_kernel_ctx *c) {
    char key[1024];
    if (c->exec == NULL)
        return pst_kctx_error(c, PST_E_PRECONDITION, "no rendezvous: run partitions in a task");
    pst_tensor *t = NULL;
    int64_t timeout = pst_kctx_attr_i(c, "_timeout_ms", PST_RECV_TIMEOUT_MS_DEFAULT);
    int rc = pst_rendezvous_recv(c->exec, key_of(c, key, sizeof key), timeout, &t, c->status);
    if (rc < 0) return rc;
    if (t->dtype != c->out_dtypes[0]) {
        pst_tensor_unref(t);
        return pst_kctx_error(c, PST_E_INTERNAL, "received %s for '%s', expected %s",
                              pst_dtype_name(t->dtype), pst_kctx_attr_s(c, "tensor_name", ""),
                              pst_dtype_name(c->out_dtypes[0]));
    }
    pst_kctx_set_output(c, 0, t);
    return 0;
}

static int recv_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "tensor_type", PST_DT_INVALID);
    if (!pst_dtype_valid(dt)) return pst_status_set(st, PST_E_INVALID, "bad tensor_type");
    const pst_attr *s = pst_node_attr(n, "_output_shape");
    pst_node_set_output(n, 0, dt, s && s->kind == PST_ATTR_SHAPE ? s->v.shape : pst_shape_unknown());
    return 0;
}

static const pst_attr_spec sr_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                         {"tensor_type", PST_ATTR_TYPE, 0},
                                         {"tensor_name", PST_ATTR_STRING, 1},
                                         {"send_device", PST_ATTR_STRING, 1},
                                         {"recv_device", PST_ATTR_STRING, 1},
                                         {"send_device_incarnation", PST_ATTR_INT, 0},
                                         {"client_terminated", PST_ATTR_BOOL, 0},
                                         {0}};

static const pst_op_def send_op = {.name = "_Send", .min_inputs = 1, .max_inputs = 1,
                                   .n_outputs = 0, .attrs = sr_attrs, .kernel = send_kernel,
                                   .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE};
static const pst_op_def recv_op = {.name = "_Recv", .min_inputs = 0, .max_inputs = 0,
                                   .n_outputs = 1, .attrs = sr_attrs, .shape = recv_shape,
                                   .kernel = recv_kernel,
                                   .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE};

void pst__register_sendrecv_ops(void) {
    pst_op_register(&send_op);
    pst_op_register(&recv_op);
}
