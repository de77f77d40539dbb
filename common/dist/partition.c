#include "partition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "op.h"
#include "ops.h"
#include "strmap.h"

typedef struct builder_state {
    pst_partition_set *set;
    pst_strmap *edges; /* "task|src:idx" -> recv node in that task's partition */
    int *node_part;    /* original node id -> partition index */
    pst_node **copy;   /* original node id -> copy */
} builder_state;

static int part_index(pst_partition_set *ps, const char *task) {
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->parts[i].task, task) == 0) return i;
    ps->parts = realloc(ps->parts, (size_t)(ps->n + 1) * sizeof *ps->parts);
    PST_ASSERT(ps->parts != NULL);
    pst_partition *p = &ps->parts[ps->n];
    memset(p, 0, sizeof *p);
    snprintf(p->task, sizeof p->task, "%s", task);
    p->graph = pst_graph_new();
    return ps->n++;
}

static void add_target(pst_partition *p, pst_node *n) {
    for (int i = 0; i < p->n_targets; i++)
        if (p->targets[i] == n) return;
    p->targets = realloc(p->targets, (size_t)(p->n_targets + 1) * sizeof *p->targets);
    PST_ASSERT(p->targets != NULL);
    p->targets[p->n_targets++] = n;
}

static void task_device(const char *task, char *out, size_t len) {
    snprintf(out, len, "%s/device:CPU:0", task);
}

/* Returns the output in partition `dst` carrying `src` (an output of an original node), making
 * the Send/Recv pair on first use. control: carry only the fact that src ran. */
static pst_output cross_edge(builder_state *bs, pst_output src, int dst, int control) {
    pst_partition_set *ps = bs->set;
    int sp = bs->node_part[src.node->id];
    char key[1024], tname[600], sdev[PST_DEVICE_MAX + 16], rdev[PST_DEVICE_MAX + 16];
    if (control)
        snprintf(tname, sizeof tname, "^%s", src.node->name);
    else
        snprintf(tname, sizeof tname, "%s:%d", src.node->name, src.index);
    snprintf(key, sizeof key, "%d|%s", dst, tname);
    pst_node *recv = pst_strmap_get(bs->edges, key);
    if (recv) return pst_out(recv, 0);
    task_device(ps->parts[sp].task, sdev, sizeof sdev);
    task_device(ps->parts[dst].task, rdev, sizeof rdev);
    pst_graph *sg = ps->parts[sp].graph, *dg = ps->parts[dst].graph;
    pst_output value;
    pst_dtype dt;
    pst_shape shape;
    if (control) {
        pst_node_builder *cb = pst_nb_new(sg, "Const", NULL);
        char cname[700];
        snprintf(cname, sizeof cname, "%s/_control_send_value_%d", src.node->name, dst);
        pst_nb_exact_name(cb, cname);
        pst_tensor *one = pst_tensor_scalar_f32(0);
        pst_nb_attr_tensor(cb, "value", one);
        pst_tensor_unref(one);
        pst_nb_attr_type(cb, "dtype", PST_FLOAT);
        pst_nb_control(cb, bs->copy[src.node->id]);
        pst_nb_device(cb, sdev);
        value = pst_nb_finish_out(cb);
        dt = PST_FLOAT;
        shape = pst_shape_scalar();
    } else {
        value = pst_out(bs->copy[src.node->id], src.index);
        dt = pst_output_dtype(src);
        shape = pst_output_shape(src);
    }
    char sname[800], rname[800];
    snprintf(sname, sizeof sname, "_send_%s_to_%d", tname[0] == '^' ? tname + 1 : tname, dst);
    snprintf(rname, sizeof rname, "_recv_%s_from_%d", tname[0] == '^' ? tname + 1 : tname, sp);
    for (char *c = sname; *c; c++)
        if (*c == ':') *c = '_';
    for (char *c = rname; *c; c++)
        if (*c == ':') *c = '_';
    pst_node_builder *sb = pst_nb_new(sg, "_Send", sname);
    pst_nb_input(sb, value);
    pst_nb_attr_type(sb, "T", dt);
    pst_nb_attr_s(sb, "tensor_name", tname);
    pst_nb_attr_s(sb, "send_device", sdev);
    pst_nb_attr_s(sb, "recv_device", rdev);
    pst_nb_attr_i(sb, "send_device_incarnation", 1);
    pst_nb_attr_b(sb, "client_terminated", 0);
    pst_nb_device(sb, sdev);
    pst_node *send = pst_nb_finish(sb);
    pst_node_builder *rb = pst_nb_new(dg, "_Recv", rname);
    pst_nb_attr_type(rb, "tensor_type", dt);
    pst_nb_attr_s(rb, "tensor_name", tname);
    pst_nb_attr_s(rb, "send_device", sdev);
    pst_nb_attr_s(rb, "recv_device", rdev);
    pst_nb_attr_i(rb, "send_device_incarnation", 1);
    pst_nb_attr_b(rb, "client_terminated", 0);
    pst_nb_attr_shape(rb, "_output_shape", shape);
    pst_nb_device(rb, rdev);
    recv = pst_nb_finish(rb);
    if (send == NULL || recv == NULL) return pst_out(NULL, 0);
    add_target(&ps->parts[sp], send);
    pst_strmap_put(bs->edges, key, recv);
    return pst_out(recv, 0);
}

int pst_partition_graph(const pst_graph *g, const char *client_task, int n_fetches,
                        const pst_output *fetches, int n_targets, pst_node *const *targets,
                        pst_partition_set *out, pst_status *st) {
    memset(out, 0, sizeof *out);
    int nn = pst_graph_num_nodes(g), rc = 0;
    char client[PST_DEVICE_MAX];
    if ((rc = pst_device_task(client_task, "/job:localhost", client, sizeof client, st)) < 0)
        return rc;
    char *need = calloc((size_t)nn + 1, 1);
    builder_state bs = {.set = out, .edges = pst_strmap_new()};
    bs.node_part = calloc((size_t)nn + 1, sizeof(int));
    bs.copy = calloc((size_t)nn + 1, sizeof(pst_node *));
    PST_ASSERT(need && bs.edges && bs.node_part && bs.copy);
    for (int i = 0; i < n_fetches; i++) need[fetches[i].node->id] = 1;
    for (int i = 0; i < n_targets; i++) need[targets[i]->id] = 1;
    for (int id = nn - 1; id >= 0; id--) {
        if (!need[id]) continue;
        pst_node *n = pst_graph_node(g, id);
        for (int i = 0; i < n->n_inputs; i++) need[n->inputs[i].node->id] = 1;
        for (int i = 0; i < n->n_control; i++) need[n->control_inputs[i]->id] = 1;
    }
    out->client = part_index(out, client);
    for (int id = 0; id < nn && rc == 0; id++) {
        if (!need[id]) continue;
        pst_node *n = pst_graph_node(g, id);
        char task[PST_DEVICE_MAX];
        if ((rc = pst_device_task(n->device, client, task, sizeof task, st)) < 0) break;
        int p = part_index(out, task);
        bs.node_part[id] = p;
        pst_graph *pg = out->parts[p].graph;
        /* ops calling g's functions (a tf.data pipeline's map) find them in g's library; a
         * partition registered on another task carries no library */
        if (pst_graph_num_functions(g) > 0) pst_graph_set_library_parent(pg, g);
        pst_output *ins = calloc((size_t)n->n_inputs + 1, sizeof *ins);
        PST_ASSERT(ins != NULL);
        for (int i = 0; i < n->n_inputs; i++) {
            pst_output in = n->inputs[i];
            ins[i] = bs.node_part[in.node->id] == p ? pst_out(bs.copy[in.node->id], in.index)
                                                     : cross_edge(&bs, in, p, 0);
        }
        pst_node_builder *b = pst_nb_new(pg, n->op->name, NULL);
        pst_nb_exact_name(b, n->name);
        pst_nb_inputs(b, n->n_inputs, ins);
        for (int i = 0; i < n->n_attrs; i++) pst_nb_attr(b, &n->attrs[i]);
        for (int i = 0; i < n->n_control; i++) {
            pst_node *c = n->control_inputs[i];
            pst_nb_control(b, bs.node_part[c->id] == p ? bs.copy[c->id]
                                                       : cross_edge(&bs, pst_out(c, 0), p, 1).node);
        }
        pst_nb_device(b, n->device);
        bs.copy[id] = pst_nb_finish(b);
        free(ins);
        if (bs.copy[id] == NULL) break;
    }
    for (int i = 0; i < out->n && rc == 0; i++)
        if (pst_graph_error(out->parts[i].graph))
            rc = pst_status_set(st, pst_graph_error(out->parts[i].graph),
                                "partition for %s: %s", out->parts[i].task,
                                pst_graph_status(out->parts[i].graph)->msg);
    if (rc == 0) {
        pst_partition *cp = &out->parts[out->client];
        cp->n_fetches = n_fetches;
        cp->fetches = calloc((size_t)n_fetches + 1, sizeof *cp->fetches);
        PST_ASSERT(cp->fetches != NULL);
        for (int i = 0; i < n_fetches; i++) {
            int sp = bs.node_part[fetches[i].node->id];
            cp->fetches[i] = sp == out->client
                                 ? pst_out(bs.copy[fetches[i].node->id], fetches[i].index)
                                 : cross_edge(&bs, fetches[i], out->client, 0);
        }
        for (int i = 0; i < n_targets; i++)
            add_target(&out->parts[bs.node_part[targets[i]->id]], bs.copy[targets[i]->id]);
        for (int i = 0; i < out->n && rc == 0; i++)
            if (pst_graph_error(out->parts[i].graph))
                rc = pst_status_set(st, pst_graph_error(out->parts[i].graph),
                                    "partition for %s: %s", out->parts[i].task,
                                    pst_graph_status(out->parts[i].graph)->msg);
    }
    free(need);
    free(bs.node_part);
    free(bs.copy);
    pst_strmap_free(bs.edges);
    if (rc) pst_partition_set_destroy(out);
    return rc;
}

void pst_partition_set_destroy(pst_partition_set *ps) {
    for (int i = 0; i < ps->n; i++) {
        pst_graph_free(ps->parts[i].graph);
        free(ps->parts[i].targets);
        free(ps->parts[i].fetches);
    }
    free(ps->parts);
    memset(ps, 0, sizeof *ps);
}

pst_partition *pst_partition_find(pst_partition_set *ps, const char *task) {
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->parts[i].task, task) == 0) return &ps->parts[i];
    return NULL;
}
