/* member: a launcher's task joining its job (see member.h). */
#include "member.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "security.h"

/* {"<job>": ["127.0.0.1:0", ..., "<bind>"]}: enough for the task to exist and serve. */
static pst_cluster *bootstrap(const char *job, int index, const char *bind, pst_status *st) {
    size_t cap = 64 + (size_t)(index + 1) * 20 + strlen(bind);
    char *json = malloc(cap);
    if (!json) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        return NULL;
    }
    size_t off = (size_t)snprintf(json, cap, "{\"%s\": [", job);
    for (int i = 0; i < index; i++) off += (size_t)snprintf(json + off, cap - off, "\"127.0.0.1:0\", ");
    snprintf(json + off, cap - off, "\"%s\"]}", bind);
    pst_cluster *c = pst_cluster_parse_ex(json, "--bind", PST_CLUSTER_ALLOW_PORT0, st);
    free(json);
    return c;
}

int pst_member_start(const pst_member_opts *o, pst_member *m, pst_status *st) {
    memset(m, 0, sizeof *m);
    const pst_task_opts *to = &o->task;
    if (!(m->boot = bootstrap(to->job, to->index, o->bind, st))) return st->code;
    pst_task_opts topts = *to;
    topts.cluster = m->boot;
    topts.listen = o->bind;
    if (!(m->task = pst_task_new(&topts, st))) goto fail;
    m->agent = pst_coord_agent_new(&(pst_coord_agent_opts){.address = o->coordinator,
                                                           .security = to->security,
                                                           .job = to->job,
                                                           .index = to->index,
                                                           .heartbeat_ms = o->heartbeat_ms,
                                                           .progress = o->progress,
                                                           .ctx = o->progress_ctx},
                                   st);
    if (!m->agent) goto fail;
    if (pst_coord_agent_register(m->agent, pst_task_address(m->task), st) < 0) goto fail;
    /* Heartbeats from now on, so the launcher sees this task while it waits for the others. */
    if (pst_coord_agent_start_heartbeats(m->agent, st) < 0) goto fail;
    char *json = NULL;
    if (pst_coord_agent_wait_cluster(m->agent,
                                     o->cluster_timeout_ms > 0 ? o->cluster_timeout_ms : 600000,
                                     &json, st) < 0)
        goto fail;
    /* Port 0 marks worker slots without a task (an elastic job's vacant or pending slots). */
    m->cluster = pst_cluster_parse_ex(json, "the coordination service's cluster",
                                      PST_CLUSTER_ALLOW_PORT0, st);
    free(json);
    if (!m->cluster || pst_task_set_cluster(m->task, m->cluster, st) < 0) goto fail;
    return 0;
fail:
    pst_status_prefix(st, "/job:%s/task:%d: ", to->job, to->index);
    pst_member_finish(m, 1, st->msg);
    return st->code ? st->code : PST_E_INTERNAL;
}

void pst_member_finish(pst_member *m, int failed, const char *reason) {
    if (m->agent) pst_coord_agent_leave(m->agent, failed, reason);
    pst_coord_agent_free(m->agent);
    pst_task_free(m->task);
    pst_cluster_free(m->cluster);
    pst_cluster_free(m->boot);
    memset(m, 0, sizeof *m);
}
