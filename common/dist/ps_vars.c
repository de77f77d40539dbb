/* ps_vars: the global variables of a graph by parameter server (see ps_vars.h). */
#include "ps_vars.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"

int pst_ps_vars_collect(const pst_graph *g, int n_ps, pst_ps_vars *pv, pst_status *st) {
    memset(pv, 0, sizeof *pv);
    pv->n_ps = n_ps;
    pv->count = calloc((size_t)n_ps + 1, sizeof *pv->count);
    pv->names = calloc((size_t)n_ps + 1, sizeof *pv->names);
    int rc = 0;
    if (!pv->count || !pv->names)
        rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory mapping variables to PS");
    int n = 0;
    const pst_output *vars = pst_graph_collection(g, PST_GLOBAL_VARIABLES, &n);
    for (int i = 0; i < n && rc == 0; i++) {
        const pst_node *v = vars[i].node;
        pst_device_name d;
        if ((rc = pst_device_parse(v->device, &d, st)) < 0) break;
        if (strcmp(d.job, "ps") != 0 || d.task < 0 || d.task >= n_ps) {
            rc = pst_status_set(st, PST_E_INVALID, "variable '%s' is placed on '%s', not on a PS "
                                "of the cluster", v->name, v->device);
            break;
        }
        int k = d.task;
        const char **nn = realloc(pv->names[k], (size_t)(pv->count[k] + 1) * sizeof *nn);
        if (!nn) {
            rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory mapping variables to PS");
            break;
        }
        pv->names[k] = nn;
        nn[pv->count[k]++] = v->name;
    }
    if (rc < 0) pst_ps_vars_destroy(pv);
    return rc;
}

void pst_ps_vars_destroy(pst_ps_vars *pv) {
    for (int k = 0; pv->names && k < pv->n_ps; k++) free(pv->names[k]);
    free(pv->names);
    free(pv->count);
    memset(pv, 0, sizeof *pv);
}

int pst_ps_vars_num_holding(const pst_ps_vars *pv) {
    int n = 0;
    for (int k = 0; k < pv->n_ps; k++) n += pv->count[k] > 0;
    return n;
}

void pst_ps_vars_device(int k, char *buf, size_t len) { snprintf(buf, len, "/job:ps/task:%d", k); }
