/* dist_run: a graph signature run as distributed steps (see dist_run.h). */
#include "dist_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "partition.h"
#include "task_client.h"

/* A remote partition: where it runs and its handle there. */
typedef struct remote {
    char addr[256];
    char handle[32];
} remote;

struct pst_dist_run {
    pst_task *t;
    pst_graph *g;
    pst_partition_set ps;
    remote *remotes; /* per partition; unused at ps.client */
    pst_session *local;
    pst_partition *mine;
    /* g's node id -> the node of this task's partition with its name (NULL: not there), for
     * the nodes g had when the run was made: feeds name g's nodes. */
    pst_node **local_of;
    int n_local_of;
};

/* Resolves the feeds' nodes once: this task's partition keeps g's node names. */
static int map_local_nodes(pst_dist_run *r, pst_status *st) {
    r->n_local_of = pst_graph_num_nodes(r->g);
    r->local_of = calloc((size_t)r->n_local_of + 1, sizeof *r->local_of);
    if (!r->local_of)
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a distributed run");
    pst_graph *lg = r->mine->graph;
    for (int i = 0; i < pst_graph_num_nodes(lg); i++) {
        pst_node *n = pst_graph_node(lg, i);
        pst_node *orig = pst_graph_find(r->g, n->name);
        if (orig && orig->id < r->n_local_of) r->local_of[orig->id] = n;
    }
    return 0;
}

pst_dist_run *pst_dist_run_new(pst_task *t, pst_graph *g, int n_fetches, const pst_output *fetches,
                               int n_targets, pst_node *const *targets, pst_status *st) {
    pst_dist_run *r = calloc(1, sizeof *r);
    if (!r) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a distributed run");
        return NULL;
    }
    r->t = t;
    r->g = g;
    if (pst_partition_graph(g, pst_task_device(t), n_fetches, fetches, n_targets, targets, &r->ps,
                            st) < 0) {
        free(r);
        return NULL;
    }
    /* Every task of the step is resolved here, once; each partition learns them all, as it may
     * send to any (a PS's value to another PS's apply op, to another worker's layer). */
    int rc = 0;
    pst_task_peer *peers = calloc((size_t)r->ps.n + 1, sizeof *peers);
    if (!peers || !(r->remotes = calloc((size_t)r->ps.n + 1, sizeof *r->remotes)))
        rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a distributed run");
    for (int i = 0; i < r->ps.n && rc == 0; i++) {
        peers[i].device = r->ps.parts[i].task;
        peers[i].address = r->remotes[i].addr;
        rc = pst_task_peer_address(t, r->ps.parts[i].task, r->remotes[i].addr,
                                   sizeof r->remotes[i].addr, st);
    }
    for (int i = 0; i < r->ps.n && rc == 0; i++) {
        pst_partition *p = &r->ps.parts[i];
        if (i == r->ps.client) continue;
        remote *rm = &r->remotes[i];
        rc = pst_task_client_register(t, p->task, p->graph, p->n_targets, p->targets, r->ps.n,
                                      peers, rm->handle, sizeof rm->handle, st);
    }
    free(peers);
    if (rc == 0) {
        r->mine = &r->ps.parts[r->ps.client];
        pst_session_opts so = {.vars = pst_task_vars(t), .exec = pst_task_rendezvous(t)};
        r->local = pst_session_new(r->mine->graph, &so, st);
        rc = r->local ? map_local_nodes(r, st) : st->code;
    }
    if (rc < 0) {
        pst_dist_run_free(r);
        return NULL;
    }
    return r;
}

/* A remote part of the step failed: this task's part stops at once (its _Recvs would wait in
 * vain). The call group holds this until every call completed. */
static void step_failed(void *arg, const pst_status *st) { pst_task_abort_steps(arg, st); }

int pst_dist_run_step(pst_dist_run *r, const pst_feed *feeds, int n_feeds, pst_tensor **out,
                      pst_status *st) {
    pst_task *t = r->t;
    for (int i = 0; out && i < r->mine->n_fetches; i++) out[i] = NULL;
    pst_feed *lf = calloc((size_t)n_feeds + 1, sizeof *lf);
    pst_call_group *calls = pst_call_group_new();
    if (!lf || !calls) {
        free(lf);
        pst_call_group_free(calls);
        return pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory for a step",
                              pst_task_device(t));
    }
    /* Feeds name g's placeholders; this task's partition has nodes of the same names. */
    int nl = 0;
    for (int i = 0; i < n_feeds; i++) {
        const pst_node *n = feeds[i].output.node;
        pst_node *mine = n && n->graph == r->g && n->id < r->n_local_of ? r->local_of[n->id]
                                                                         : NULL;
        if (!mine) continue;
        lf[nl].output = pst_out(mine, feeds[i].output.index);
        lf[nl].value = feeds[i].value;
        nl++;
    }
    int64_t step = pst_task_new_step_id(t);
    pst_call_group_on_error(calls, step_failed, t);
    pst_status lst = {0};
    int rc = 0;
    for (int i = 0; i < r->ps.n && rc == 0; i++)
        if (i != r->ps.client)
            rc = pst_task_client_start_run(t, calls, r->remotes[i].addr, r->remotes[i].handle,
                                           step, &lst);
    /* Only with every part started: a part missing would leave the others waiting. */
    if (rc == 0)
        rc = pst_session_run_step(r->local, step, lf, nl, r->mine->fetches,
                                  out ? r->mine->n_fetches : 0, r->mine->targets,
                                  r->mine->n_targets, out, &lst);
    free(lf);
    pst_status fst = {0};
    if (pst_task_flush_step(t, step, &fst) < 0 && rc == 0) {
        rc = fst.code;
        lst = fst;
    }
    pst_status rst = {0};
    int remote_rc = pst_call_group_wait(calls, &rst);
    pst_call_group_free(calls);
    if (remote_rc < 0) {
        /* The remote task's error explains the local one (an aborted _Recv). */
        if (out && rc == 0)
            for (int i = 0; i < r->mine->n_fetches; i++) {
                pst_tensor_unref(out[i]);
                out[i] = NULL;
            }
        /* name the task whose call failed when the message gives only its address */
        const char *who = NULL;
        for (int i = 0; i < r->ps.n && !who; i++)
            if (i != r->ps.client && r->remotes[i].addr[0] &&
                strstr(rst.msg, r->remotes[i].addr) && !strstr(rst.msg, r->ps.parts[i].task))
                who = r->ps.parts[i].task;
        return pst_status_set(st, rst.code, "%s%s%s", who ? who : "", who ? ": " : "",
                              rst.msg);
    }
    if (rc < 0) return pst_status_set(st, lst.code, "%s", lst.msg);
    return 0;
}

void pst_dist_run_free(pst_dist_run *r) {
    if (!r) return;
    for (int i = 0; r->remotes && i < r->ps.n; i++) {
        if (i == r->ps.client || !r->remotes[i].handle[0] || !r->remotes[i].addr[0]) continue;
        pst_task_client_deregister(r->t, r->remotes[i].addr, r->remotes[i].handle);
    }
    if (r->local) pst_session_free(r->local);
    pst_partition_set_destroy(&r->ps);
    free(r->remotes);
    free(r->local_of);
    free(r);
}
