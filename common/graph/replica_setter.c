/* replica_setter: where variables go (see replica_setter.h). */
#include "replica_setter.h"

#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "op.h"

struct pst_replica_setter {
    int ps_tasks;
    pst_device_name worker;
    pst_place_strategy strategy;
    int next;          /* round robin */
    int64_t *bytes;    /* per PS */
    int *count;
};

pst_replica_setter *pst_replica_setter_new(int ps_tasks, const char *worker_device,
                                           pst_place_strategy strategy, pst_status *st) {
    if (ps_tasks < 0) {
        pst_status_set(st, PST_E_INVALID, "replica device setter: ps_tasks must be >= 0, got %d",
                       ps_tasks);
        return NULL;
    }
    pst_replica_setter *rs = calloc(1, sizeof *rs);
    PST_ASSERT(rs != NULL);
    if (pst_device_parse(worker_device ? worker_device : "/job:worker", &rs->worker, st) < 0) {
        free(rs);
        return NULL;
    }
    rs->ps_tasks = ps_tasks;
    rs->strategy = strategy;
    rs->bytes = calloc((size_t)ps_tasks + 1, sizeof *rs->bytes);
    rs->count = calloc((size_t)ps_tasks + 1, sizeof *rs->count);
    PST_ASSERT(rs->bytes && rs->count);
    return rs;
}

void pst_replica_setter_free(pst_replica_setter *rs) {
    if (rs == NULL) return;
    free(rs->bytes);
    free(rs->count);
    free(rs);
}

int pst_replica_setter_num_ps(const pst_replica_setter *rs) { return rs->ps_tasks; }

int64_t pst_replica_setter_bytes(const pst_replica_setter *rs, int k, int *n_vars) {
    if (n_vars) *n_vars = rs->count[k];
    return rs->bytes[k];
}

static int64_t var_bytes(const pst_node *n) {
    int64_t e = 1;
    pst_shape s = n->out_shapes ? n->out_shapes[0] : pst_shape_scalar();
    const pst_attr *a = pst_node_attr(n, "shape");
    if (a) s = a->v.shape;
    for (int i = 0; i < s.rank; i++) e *= s.dims[i] > 0 ? s.dims[i] : 1;
    pst_dtype dt = pst_node_attr_type(n, "dtype", PST_FLOAT);
    return e * (int64_t)pst_dtype_size(dt);
}

static int choose_ps(pst_replica_setter *rs, int64_t bytes) {
    int k = 0;
    if (rs->strategy == PST_PLACE_GREEDY) {
        for (int i = 1; i < rs->ps_tasks; i++)
            if (rs->bytes[i] < rs->bytes[k]) k = i;
    } else {
        k = rs->next;
        rs->next = (rs->next + 1) % rs->ps_tasks;
    }
    rs->bytes[k] += bytes;
    rs->count[k]++;
    return k;
}

void pst_replica_setter_fn(void *ctx, const pst_node *node, const char *requested, char *out) {
    pst_replica_setter *rs = ctx;
    pst_device_name cur, dev;
    if (pst_device_parse(requested, &cur, NULL) < 0) return; /* the builder reports it */
    if ((node->op->flags & PST_OP_VARIABLE) && rs->ps_tasks > 0 &&
        (cur.job[0] == '\0' || strcmp(cur.job, "ps") == 0)) {
        pst_device_parse("/job:ps", &dev, NULL);
        if (cur.task >= 0 && cur.task < rs->ps_tasks) {
            /* Pinned to a chosen PS: count it there without advancing the rotation. */
            rs->bytes[cur.task] += var_bytes(node);
            rs->count[cur.task]++;
        } else {
            dev.task = choose_ps(rs, var_bytes(node));
        }
    } else {
        dev = rs->worker;
    }
    pst_device_merge(&dev, &cur);
    pst_device_str(&dev, out, PST_DEVICE_MAX);
}

void pst_replica_setter_report(const pst_graph *g, int ps_tasks, FILE *f) {
    int64_t *bytes = calloc((size_t)ps_tasks + 1, sizeof *bytes);
    int *count = calloc((size_t)ps_tasks + 1, sizeof *count);
    PST_ASSERT(bytes && count);
    for (int k = 0; k < ps_tasks; k++) {
        fprintf(f, "ps task %d (/job:ps/task:%d)\n", k, k);
        fprintf(f, "  %-48s %-20s %14s\n", "variable", "shape", "bytes");
        for (int i = 0; i < pst_graph_num_nodes(g); i++) {
            const pst_node *n = pst_graph_node(g, i);
            if (!(n->op->flags & PST_OP_VARIABLE)) continue;
            pst_device_name d;
            if (pst_device_parse(n->device, &d, NULL) < 0 || strcmp(d.job, "ps") != 0) continue;
            if ((d.task < 0 ? 0 : d.task) != k) continue;
            char sh[64];
            pst_shape s = n->out_shapes[0];
            int64_t b = var_bytes(n);
            fprintf(f, "  %-48s %-20s %14lld\n", n->name, pst_shape_str(&s, sh, sizeof sh),
                    (long long)b);
            bytes[k] += b;
            count[k]++;
        }
        fprintf(f, "  total: %d variables, %lld bytes\n", count[k], (long long)bytes[k]);
    }
    int64_t mx = 0, mn = ps_tasks ? bytes[0] : 0;
    for (int k = 0; k < ps_tasks; k++) {
        if (bytes[k] > mx) mx = bytes[k];
        if (bytes[k] < mn) mn = bytes[k];
    }
    if (mn > 0)
        fprintf(f, "imbalance (largest / smallest): %.3f\n", (double)mx / (double)mn);
    else
        fprintf(f, "imbalance (largest / smallest): inf (a PS holds no bytes)\n");
    free(bytes);
    free(count);
}
