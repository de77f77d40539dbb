#include "placement.h"

#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "op.h"
#include "ops.h"

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

void pst_placement_report(const pst_graph *g, int ps_tasks, FILE *f) {
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

int pst_partition_count(pst_shape shape, pst_dtype dt, int fixed, int64_t min_slice_bytes,
                        int max_parts) {
    int64_t rows = shape.rank > 0 ? shape.dims[0] : 1;
    if (fixed > 0) return (int)(fixed < rows ? fixed : rows);
    int64_t total = (int64_t)pst_dtype_size(dt);
    for (int i = 0; i < shape.rank; i++) total *= shape.dims[i];
    int64_t n = min_slice_bytes > 0 ? total / min_slice_bytes : 1;
    if (n < 1) n = 1;
    if (max_parts > 0 && n > max_parts) n = max_parts;
    if (n > rows) n = rows;
    return (int)n;
}

int64_t pst_partition_rows(int64_t rows, int n, int i, int64_t *len) {
    int64_t base = rows / n, extra = rows % n;
    *len = base + (i < extra ? 1 : 0);
    return i * base + (i < extra ? i : extra);
}

void pst_partitioned_var_free(pst_partitioned_var *pv) {
    if (pv == NULL) return;
    free(pv->parts);
    free(pv->name);
    free(pv);
}

pst_partitioned_var *pst_partitioned_variable(pst_graph *g, const char *name, pst_dtype dt,
                                              pst_shape shape, int n_parts,
                                              const pst_initializer *init, int trainable) {
    if (pst_graph_error(g)) return NULL;
    if (shape.rank < 1 || !pst_shape_is_known(&shape) || n_parts < 1 || n_parts > shape.dims[0]) {
        char buf[128];
        pst_graph_set_error(g, PST_E_INVALID,
                            "partitioned variable '%s': cannot split shape %s into %d parts", name,
                            pst_shape_str(&shape, buf, sizeof buf), n_parts);
        return NULL;
    }
    pst_partitioned_var *pv = calloc(1, sizeof *pv);
    PST_ASSERT(pv != NULL);
    pv->n_parts = n_parts;
    pv->parts = calloc((size_t)n_parts, sizeof *pv->parts);
    PST_ASSERT(pv->parts != NULL);
    pv->full_shape = shape;
    const char *scope = pst_graph_name_scope(g);
    size_t len = strlen(scope) + strlen(name) + 2;
    pv->name = malloc(len);
    PST_ASSERT(pv->name != NULL);
    snprintf(pv->name, len, "%s%s%s", scope, scope[0] ? "/" : "", name);
    pst_output *reads = calloc((size_t)n_parts, sizeof *reads);
    PST_ASSERT(reads != NULL);
    int64_t full_dims[PST_MAX_RANK];
    for (int d = 0; d < shape.rank; d++) full_dims[d] = shape.dims[d];
    for (int i = 0; i < n_parts && !pst_graph_error(g); i++) {
        int64_t rows;
        int64_t start = pst_partition_rows(shape.dims[0], n_parts, i, &rows);
        pst_shape ps = shape;
        ps.dims[0] = rows;
        char pname[512];
        snprintf(pname, sizeof pname, "%s/part_%d", name, i);
        pst_variable_opts o = {.name = pname,
                               .dtype = dt,
                               .shape = ps,
                               .init_fn = pst_init_fn_of,
                               .init_ctx = (void *)init,
                               .trainable = trainable};
        pv->parts[i] = pst_variable_ex(g, &o);
        if (pv->parts[i].node == NULL) break;
        /* TF's SaveSliceInfo, kept as internal attrs the saver and exporter read. */
        pst_node *n = pv->parts[i].node;
        int64_t offset[PST_MAX_RANK] = {0};
        offset[0] = start;
        pst_attr extra[4];
        memset(extra, 0, sizeof extra);
        extra[0] = (pst_attr){.name = "_save_slice_full_name", .kind = PST_ATTR_STRING};
        extra[0].v.s = pv->name;
        extra[1] = (pst_attr){.name = "_save_slice_full_shape", .kind = PST_ATTR_LIST_INT,
                              .n = shape.rank};
        extra[1].list.i = full_dims;
        extra[2] = (pst_attr){.name = "_save_slice_var_offset", .kind = PST_ATTR_LIST_INT,
                              .n = shape.rank};
        extra[2].list.i = offset;
        extra[3] = (pst_attr){.name = "_save_slice_var_shape", .kind = PST_ATTR_LIST_INT,
                              .n = shape.rank};
        extra[3].list.i = ps.dims;
        n->attrs = realloc(n->attrs, (size_t)(n->n_attrs + 4) * sizeof *n->attrs);
        PST_ASSERT(n->attrs != NULL);
        for (int k = 0; k < 4; k++) pst_attr_copy(&n->attrs[n->n_attrs++], &extra[k], NULL);
        reads[i] = pst_variable_value(pv->parts[i]);
    }
    if (!pst_graph_error(g)) {
        pst_graph_push_name_scope(g, name, 0);
        pv->value = n_parts == 1 ? reads[0] : pst_concat(g, n_parts, reads, 0, "concat");
        pst_graph_pop_name_scope(g);
    }
    free(reads);
    if (pst_graph_error(g)) {
        pst_partitioned_var_free(pv);
        return NULL;
    }
    return pv;
}
