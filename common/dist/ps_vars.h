/*
 * ps_vars — which parameter server holds which global variable of a graph whose variables
 * the replica device setter placed on "/job:ps/task:K": the map distributed checkpoints
 * (dist_save.h) and readiness (readiness.h) go through.
 *
 *     pst_ps_vars pv;
 *     if (pst_ps_vars_collect(g, n_ps, &pv, &st) < 0) ... a variable is not on a PS ...
 *     for (int k = 0; k < pv.n_ps; k++)
 *         for (int i = 0; i < pv.count[k]; i++) printf("%s on /job:ps/task:%d\n", pv.names[k][i], k);
 *     pst_ps_vars_destroy(&pv);
 */
#ifndef PST_PS_VARS_H
#define PST_PS_VARS_H

#include <stddef.h>

#include "graph.h"

typedef struct pst_ps_vars {
    int n_ps;
    int *count;          /* variables per PS */
    const char ***names; /* names per PS, borrowed from the graph's nodes */
} pst_ps_vars;

/* Collects the PST_GLOBAL_VARIABLES of g by PS task (n_ps tasks). Returns 0, or PST_E_INVALID
 * naming a variable that is not on a PS of the cluster, PST_E_EXHAUSTED; *pv is then empty.
 * The graph must outlive pv. */
int pst_ps_vars_collect(const pst_graph *g, int n_ps, pst_ps_vars *pv, pst_status *st);
void pst_ps_vars_destroy(pst_ps_vars *pv);
/* How many PS hold at least one variable. */
int pst_ps_vars_num_holding(const pst_ps_vars *pv);
/* The device of PS k: "/job:ps/task:K". */
void pst_ps_vars_device(int k, char *buf, size_t len);

#endif
