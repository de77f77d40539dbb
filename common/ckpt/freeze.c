/* freeze: variables folded into constants (see freeze.h). */
#include "freeze.h"

#include <stdlib.h>
#include <string.h>

#include "file.h"
#include "metagraph.h"
#include "op.h"
#include "varstore.h"

int pst_freeze_graph(pst_session *s, const pst_graph *g, int n_outputs, const char *const *outputs,
                     const char *path, pst_status *st) {
    int nn = pst_graph_num_nodes(g), rc = 0;
    char *need = calloc((size_t)nn + 1, 1);
    pst_node **copy = calloc((size_t)nn + 1, sizeof *copy);
    PST_ASSERT(need && copy);
    for (int i = 0; i < n_outputs; i++) {
        pst_output o = pst_graph_output_by_name(g, outputs[i]);
        if (o.node == NULL) {
            free(need);
            free(copy);
            return pst_status_set(st, PST_E_NOT_FOUND, "freeze: no output '%s' in the graph", outputs[i]);
        }
        need[o.node->id] = 1;
    }
    for (int id = nn - 1; id >= 0; id--) {
        if (!need[id]) continue;
        pst_node *n = pst_graph_node(g, id);
        for (int i = 0; i < n->n_inputs; i++) need[n->inputs[i].node->id] = 1;
        for (int i = 0; i < n->n_control; i++) need[n->control_inputs[i]->id] = 1;
    }
    pst_graph *fg = pst_graph_new();
    for (int id = 0; id < nn && rc == 0; id++) {
        if (!need[id]) continue;
        pst_node *n = pst_graph_node(g, id);
        pst_node_builder *b;
        if (n->op->flags & PST_OP_VARIABLE) {
            pst_var *v = pst_var_store_find(pst_session_vars(s), n->name);
            pst_tensor *t = v ? pst_var_read(v) : NULL;
            if (t == NULL) {
                rc = pst_var_uninit_error(n->name, st);
                break;
            }
            b = pst_nb_new(fg, "Const", NULL);
            pst_nb_attr_tensor(b, "value", t);
            pst_nb_attr_type(b, "dtype", t->dtype);
            pst_tensor_unref(t);
        } else {
            b = pst_nb_new(fg, n->op->name, NULL);
            for (int i = 0; i < n->n_attrs; i++) pst_nb_attr(b, &n->attrs[i]);
            for (int i = 0; i < n->n_inputs; i++)
                pst_nb_input(b, pst_out(copy[n->inputs[i].node->id], n->inputs[i].index));
            for (int i = 0; i < n->n_control; i++) pst_nb_control(b, copy[n->control_inputs[i]->id]);
        }
        pst_nb_exact_name(b, n->name);
        pst_nb_device(b, n->device);
        copy[id] = pst_nb_finish(b);
        if (copy[id] == NULL)
            rc = pst_status_set(st, pst_graph_error(fg), "freeze: %s", pst_graph_status(fg)->msg);
    }
    if (rc == 0) {
        uint8_t *buf;
        size_t len;
        rc = pst_graph_def_export(fg, 0, &buf, &len, st);
        if (rc == 0) {
            rc = pst_file_write_atomic(path, buf, len, st);
            free(buf);
        }
    }
    pst_graph_free(fg);
    free(need);
    free(copy);
    return rc;
}
