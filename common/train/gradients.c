#include "gradients.h"

#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

typedef struct partials {
    pst_output *items;
    int n, cap;
} partials;

static void add_partial(partials *p, pst_output o) {
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 4;
        p->items = realloc(p->items, (size_t)p->cap * sizeof *p->items);
        PST_ASSERT(p->items != NULL);
    }
    p->items[p->n++] = o;
}

static pst_output sum_partials(pst_graph *g, partials *p) {
    if (p->n == 0) return pst_out(NULL, 0);
    if (p->n == 1) return p->items[0];
    return pst_add_n(g, p->n, p->items, NULL);
}

int pst_gradients(pst_graph *g, int n_ys, const pst_output *ys, const pst_output *grad_ys,
                  int n_xs, const pst_output *xs, pst_output *dxs, int *n_none, pst_status *st) {
    int nn = pst_graph_num_nodes(g);
    int rc = 0;
    for (int i = 0; i < n_xs; i++) dxs[i] = pst_out(NULL, 0);
    if (n_none) *n_none = 0;
    if (pst_graph_error(g)) {
        pst_status_set(st, pst_graph_error(g), "%s", pst_graph_status(g)->msg);
        return pst_graph_error(g);
    }
    char *from_x = calloc((size_t)nn + 1, 1), *to_y = calloc((size_t)nn + 1, 1);
    int *out_base = calloc((size_t)nn + 1, sizeof(int));
    PST_ASSERT(from_x && to_y && out_base);
    int n_slots = 0;
    for (int i = 0; i < nn; i++) {
        out_base[i] = n_slots;
        n_slots += pst_graph_node(g, i)->n_outputs;
    }
    partials *grads = calloc((size_t)n_slots + 1, sizeof *grads);
    PST_ASSERT(grads != NULL);

    for (int i = 0; i < n_xs; i++) from_x[xs[i].node->id] = 1;
    for (int id = 0; id < nn; id++) {
        pst_node *n = pst_graph_node(g, id);
        if (from_x[id]) continue;
        for (int i = 0; i < n->n_inputs; i++)
            if (from_x[n->inputs[i].node->id]) {
                from_x[id] = 1;
                break;
            }
    }
    for (int i = 0; i < n_ys; i++) to_y[ys[i].node->id] = 1;
    for (int id = nn - 1; id >= 0; id--) {
        if (!to_y[id]) continue;
        pst_node *n = pst_graph_node(g, id);
        for (int i = 0; i < n->n_inputs; i++) to_y[n->inputs[i].node->id] = 1;
    }

    pst_graph_push_name_scope(g, "gradients", 0);
    for (int i = 0; i < n_ys; i++) {
        pst_output dy = grad_ys && grad_ys[i].node ? grad_ys[i] : pst_ones_like(g, ys[i], NULL);
        add_partial(&grads[out_base[ys[i].node->id] + ys[i].index], dy);
    }
    /* The xs themselves stop the sweep: gradients flow into them, not through them. */
    char *is_x = calloc((size_t)nn + 1, 1);
    PST_ASSERT(is_x != NULL);
    for (int i = 0; i < n_xs; i++) is_x[xs[i].node->id] = 1;

    for (int id = nn - 1; id >= 0 && rc == 0; id--) {
        if (!(from_x[id] && to_y[id]) || is_x[id]) continue;
        pst_node *n = pst_graph_node(g, id);
        int k = n->n_outputs, any = 0;
        pst_output *dy = calloc((size_t)k + 1, sizeof *dy);
        pst_output *dx = calloc((size_t)n->n_inputs + 1, sizeof *dx);
        PST_ASSERT(dy && dx);
        for (int i = 0; i < k; i++) {
            dy[i] = sum_partials(g, &grads[out_base[id] + i]);
            if (dy[i].node) any = 1;
        }
        if (any) {
            if (n->op->grad == NULL) {
                if (!(n->op->flags & PST_OP_NOT_DIFFERENTIABLE))
                    rc = pst_graph_set_error(g, PST_E_UNIMPLEMENTED,
                                             "no gradient defined for op %s (node '%s')",
                                             n->op->name, n->name);
            } else {
                char *scope = malloc(strlen(n->name) + 8);
                PST_ASSERT(scope != NULL);
                /* Scope names may not contain ':' and nest by '/', which names already use. */
                strcpy(scope, n->name);
                strcat(scope, "_grad");
                pst_graph_push_name_scope(g, scope, 0);
                pst_graph_push_device(g, n->requested_device);
                rc = n->op->grad(g, n, dy, dx);
                if (rc == 0 && pst_graph_error(g)) rc = pst_graph_error(g);
                pst_graph_pop_device(g);
                pst_graph_pop_name_scope(g);
                free(scope);
                for (int i = 0; rc == 0 && i < n->n_inputs; i++) {
                    pst_output in = n->inputs[i];
                    if (dx[i].node && from_x[in.node->id])
                        add_partial(&grads[out_base[in.node->id] + in.index], dx[i]);
                }
            }
        }
        free(dy);
        free(dx);
    }
    for (int i = 0; rc == 0 && i < n_xs; i++) {
        dxs[i] = sum_partials(g, &grads[out_base[xs[i].node->id] + xs[i].index]);
        if (dxs[i].node == NULL && n_none) (*n_none)++;
    }
    pst_graph_pop_name_scope(g);
    if (rc == 0 && pst_graph_error(g)) rc = pst_graph_error(g);
    if (rc) {
        pst_status_set(st, rc, "%s", pst_graph_status(g)->msg);
        for (int i = 0; i < n_xs; i++) dxs[i] = pst_out(NULL, 0);
    }
    for (int i = 0; i < n_slots; i++) free(grads[i].items);
    free(grads);
    free(from_x);
    free(to_y);
    free(is_x);
    free(out_base);
    return rc;
}
