/* hybrid: pstrain-worker's --mode hybrid (see hybrid.h). */
#include "hybrid.h"

#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "op.h"
#include "task_client.h"
#include "varstore.h"

typedef struct placer {
    const pst_graph *layout;
    char worker[PST_DEVICE_MAX];
} placer;

/* The layout's PS device for a variable that stays on its PS, else NULL. */
static const char *ps_device(const pst_graph *layout, const char *name) {
    const pst_node *n = pst_graph_find(layout, name);
    if (!n || strncmp(n->device, "/job:ps", 7) != 0) return NULL;
    const char *base = strrchr(name, '/');
    if (strstr(name, "/part_") || strcmp(base ? base + 1 : name, "global_step") == 0)
        return n->device;
    return NULL;
}

static void place(void *ctx, const pst_node *node, const char *requested, char *out) {
    placer *p = ctx;
    const char *ps = (node->op->flags & PST_OP_VARIABLE) ? ps_device(p->layout, node->name) : NULL;
    if (ps) {
        snprintf(out, PST_DEVICE_MAX, "%s", ps);
        return;
    }
    /* Everything else runs here unless asked elsewhere (an embedding part's gather asks for
     * the part's PS). */
    pst_device_name dev, cur;
    if (pst_device_parse(p->worker, &dev, NULL) < 0 || pst_device_parse(requested, &cur, NULL) < 0)
        return; /* the builder reports a bad device */
    if (node->op->flags & PST_OP_VARIABLE) cur.job[0] = '\0', cur.task = -1;
    pst_device_merge(&dev, &cur);
    pst_device_str(&dev, out, PST_DEVICE_MAX);
}

int pst_worker_hybrid_build(const pst_train_flags *f, const pst_net_def *net,
                            const pst_graph *layout, const char *worker_device, model *train,
                            pst_status *st) {
    placer p = {.layout = layout};
    snprintf(p.worker, sizeof p.worker, "%s", worker_device);
    if (pst_worker_build_model(f, net, train, place, &p, st) < 0) return st->code;
    /* The device function's context ends here: nothing else is built into the graph. */
    pst_graph_set_device_fn(train->g, NULL, NULL);
    int dense = 0, on_ps = 0;
    for (int i = 0; i < pst_graph_num_nodes(train->g); i++) {
        const pst_node *n = pst_graph_node(train->g, i);
        if (!(n->op->flags & PST_OP_VARIABLE)) continue;
        if (strncmp(n->device, "/job:ps", 7) == 0) on_ps++;
        else dense++;
    }
    if (on_ps < 2)
        return pst_status_set(st, PST_E_INVALID, "--mode hybrid: model '%s' has no partitioned "
                              "variable to keep on the PS (use a model with an embedding, "
                              "e.g. bag_of_ids, or --partition-min-bytes)", net->name);
    (void)dense;
    return 0;
}

/* Calls fn once per PS with the dense variables whose layout copies live there. */
typedef int (*per_ps_fn)(pst_task *t, const char *ps, int n, const char **names,
                         const pst_node **nodes, pst_status *st);

static int for_each_ps(pst_task *t, const model *train, const pst_graph *layout, per_ps_fn fn,
                       pst_status *st) {
    int total = pst_graph_num_nodes(train->g), rc = 0;
    const char **names = calloc((size_t)total + 1, sizeof *names);
    const pst_node **nodes = calloc((size_t)total + 1, sizeof *nodes);
    char *done = calloc((size_t)total + 1, 1);
    if (!names || !nodes || !done) rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    for (int i = 0; i < total && !rc; i++) {
        const pst_node *n = pst_graph_node(train->g, i);
        if (done[i] || !(n->op->flags & PST_OP_VARIABLE) || strncmp(n->device, "/job:ps", 7) == 0)
            continue;
        const pst_node *home = pst_graph_find(layout, n->name);
        if (!home || strncmp(home->device, "/job:ps", 7) != 0) {
            rc = pst_status_set(st, PST_E_INTERNAL, "--mode hybrid: variable '%s' has no copy "
                                "on a PS", n->name);
            break;
        }
        int k = 0;
        for (int j = i; j < total; j++) { /* every dense variable on this PS */
            const pst_node *m = pst_graph_node(train->g, j);
            if (done[j] || !(m->op->flags & PST_OP_VARIABLE) ||
                strncmp(m->device, "/job:ps", 7) == 0)
                continue;
            const pst_node *h = pst_graph_find(layout, m->name);
            if (!h || strcmp(h->device, home->device) != 0) continue;
            names[k] = m->name;
            nodes[k++] = m;
            done[j] = 1;
        }
        rc = fn(t, home->device, k, names, nodes, st);
    }
    free(names);
    free(nodes);
    free(done);
    return rc;
}

static int pull_from(pst_task *t, const char *ps, int n, const char **names,
                     const pst_node **nodes, pst_status *st) {
    pst_tensor **vals = calloc((size_t)n + 1, sizeof *vals);
    if (!vals) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    int rc = pst_task_client_pull_variables(t, ps, n, names, vals, st);
    for (int i = 0; i < n && !rc; i++) {
        pst_var *v = pst_var_store_get_or_create(pst_task_vars(t), names[i],
                                                 nodes[i]->out_dtypes[0],
                                                 nodes[i]->out_shapes[0], st);
        rc = v ? pst_var_assign_take(v, vals[i], 1, st) : st->code;
    }
    for (int i = 0; i < n; i++) pst_tensor_unref(vals[i]);
    free(vals);
    return rc;
}

static int push_to(pst_task *t, const char *ps, int n, const char **names,
                   const pst_node **nodes, pst_status *st) {
    (void)nodes;
    pst_tensor **vals = calloc((size_t)n + 1, sizeof *vals);
    if (!vals) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        pst_var *v = pst_var_store_find(pst_task_vars(t), names[i]);
        if (!v || !(vals[i] = pst_var_read(v)))
            rc = pst_status_set(st, PST_E_PRECONDITION, "--mode hybrid: this worker's replica "
                                "of '%s' is not initialized", names[i]);
    }
    if (!rc) rc = pst_task_client_push_variables(t, ps, n, names, vals, st);
    for (int i = 0; i < n; i++) pst_tensor_unref(vals[i]);
    free(vals);
    return rc;
}

int pst_worker_hybrid_pull(pst_task *t, const model *train, const pst_graph *layout,
                           pst_status *st) {
    return for_each_ps(t, train, layout, pull_from, st);
}

int pst_worker_hybrid_push(pst_task *t, const model *train, const pst_graph *layout,
                           pst_status *st) {
    return for_each_ps(t, train, layout, push_to, st);
}
