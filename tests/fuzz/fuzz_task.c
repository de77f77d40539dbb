/*
 * fuzz_task — every request handler of the task service (RegisterGraph, DeregisterGraph,
 * RunGraph, PushTensor, FetchVariable, Save, Restore, Status, Shutdown) on arbitrary requests,
 * called in process through the in-process transport (no network), as a PS would receive
 * them from a member gone wrong.
 *
 * Input: a sequence of calls, each one byte choosing the method (mod 9), two bytes of payload
 * length (little endian) and the payload. Every input runs against a fresh PS that holds a
 * variable "w" (float [4]) and whose checkpoint directory is the harness's private directory.
 * Whatever the calls were: no crash, no leak, the PS still answers Status with a message that
 * decodes, and "w", while the PS holds it, keeps its dtype and shape.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster.h"
#include "fuzz.h"
#include "task.h"
#include "task_status.h"
#include "varstore.h"

#define MAX_CALLS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse_ex(
        "{\"ps\": [\"fuzz-ps:0\"], \"worker\": [\"fuzz-worker:0\"]}", "fuzz",
        PST_CLUSTER_ALLOW_PORT0, &st);
    PST_FUZZ_CHECK(c != NULL, "%s", st.msg);
    char ckpt[4096];
    pst_fuzz_path("ckpt", ckpt, sizeof ckpt);
    mkdir(ckpt, 0755); /* EEXIST after the first input */
    pst_task *t = pst_task_new(&(pst_task_opts){.cluster = c, .job = "ps", .index = 0,
                                                .transport = "inproc", .quiet = 1,
                                                .recv_timeout_ms = 200, .step_timeout_ms = 2000,
                                                .checkpoint_dir = ckpt,
                                                .max_pending_bytes = 64 << 20,
                                                .max_graph_bytes = 64 << 20},
                               &st);
    PST_FUZZ_CHECK(t != NULL, "%s", st.msg);
    PST_FUZZ_CHECK(pst_var_store_get_or_create(pst_task_vars(t), "w", PST_FLOAT,
                                               pst_shape_1d(4), &st) != NULL, "%s", st.msg);
    pst_transport *tr = pst_task_transport(t);
    const char *addr = pst_task_address(t);
    size_t pos = 0;
    for (int k = 0; k < MAX_CALLS && pos + 3 <= size; k++) {
        int method = data[pos] % PST_TASK_METHOD_COUNT;
        size_t len = (size_t)data[pos + 1] | (size_t)data[pos + 2] << 8;
        pos += 3;
        if (len > size - pos) len = size - pos;
        pst_msg m = pst_msg_of(data + pos, len);
        pos += len;
        uint8_t *resp = NULL;
        size_t rl = 0;
        pst_status cst = {0};
        int rc = pst_transport_call_sync(tr, addr, method, &m, 2000, 0, &resp, &rl, &cst);
        pst_fuzz_check_status(rc, &cst, pst_task_methods[method]);
        free(resp);
    }
    /* still serving (or shut down by a member's Shutdown, which is allowed) */
    uint8_t *resp = NULL;
    size_t rl = 0;
    pst_status sst = {0};
    if (pst_transport_call_sync(tr, addr, PST_TASK_STATUS, NULL, 2000, 0, &resp, &rl, &sst) == 0) {
        pst_task_status_report r;
        int rc = pst_task_status_decode(resp, rl, addr, &r, &sst);
        PST_FUZZ_CHECK(rc == 0, "the task's own Status does not decode: %s", sst.msg);
        pst_task_status_report_destroy(&r);
    }
    free(resp);
    pst_var *w = pst_var_store_find(pst_task_vars(t), "w");
    pst_tensor *v = w ? pst_var_read(w) : NULL;
    if (v)
        PST_FUZZ_CHECK(v->dtype == PST_FLOAT && v->shape.rank == 1 && v->shape.dims[0] == 4,
                       "a request changed w's dtype or shape");
    pst_tensor_unref(v);
    pst_task_free(t);
    pst_cluster_free(c);
    return 0;
}
