/* task_status: decoding and printing a task's report (see task_status.h). */
#include "task_status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "pstrain_task.pb-c.h"

/* strdup that records a failure instead of returning NULL into the report. */
static char *dup_or(const char *s, int *oom) {
    char *d = strdup(s ? s : "");
    if (!d) *oom = 1;
    return d;
}

int pst_task_status_decode(const uint8_t *buf, size_t len, const char *from,
                           pst_task_status_report *out, pst_status *st) {
    memset(out, 0, sizeof *out);
    Pstrain__TaskStatus *s = pstrain__task_status__unpack(NULL, len, buf);
    if (!s) return pst_status_set(st, PST_E_DATA_LOSS, "task %s sent a malformed status", from);
    int oom = 0;
    out->task = dup_or(s->task, &oom);
    out->address = dup_or(s->address, &oom);
    out->uptime_s = s->uptime_s;
    out->vars = calloc(s->n_variables + 1, sizeof *out->vars);
    out->partitions = calloc(s->n_partitions + 1, sizeof *out->partitions);
    if (!out->vars || !out->partitions) oom = 1;
    for (size_t i = 0; i < s->n_variables && !oom; i++) {
        Pstrain__VariableStatus *v = s->variables[i];
        pst_task_status_var *r = &out->vars[out->n_vars++];
        r->name = dup_or(v->name, &oom);
        r->full_name = dup_or(v->full_name, &oom);
        r->slice = dup_or(v->slice_spec, &oom);
        r->dtype = v->dtype;
        r->initialized = v->initialized;
        r->shape.rank = v->n_shape > PST_MAX_RANK ? PST_MAX_RANK : (int)v->n_shape;
        for (int d = 0; d < r->shape.rank; d++) r->shape.dims[d] = v->shape[d];
        r->bytes = v->bytes;
        r->pulls = v->pulls;
        r->updates = v->updates;
        r->stale = v->stale;
    }
    for (size_t i = 0; i < s->n_partitions && !oom; i++) {
        Pstrain__PartitionStatus *p = s->partitions[i];
        pst_task_status_partition *r = &out->partitions[out->n_partitions++];
        r->handle = dup_or(p->handle, &oom);
        r->client = dup_or(p->client, &oom);
        r->steps = p->steps;
        r->nodes = calloc(p->n_nodes + 1, sizeof *r->nodes);
        if (!r->nodes) oom = 1;
        for (size_t j = 0; j < p->n_nodes && !oom; j++) r->nodes[r->n_nodes++] = dup_or(p->nodes[j], &oom);
    }
    out->bytes_received = s->bytes_received;
    out->bytes_sent = s->bytes_sent;
    out->chunks_received = s->chunks_received;
    out->pending_bytes = s->pending_bytes;
    out->pushes_refused = s->pushes_refused;
    out->partials_expired = s->partials_expired;
    out->graph_bytes = s->graph_bytes;
    out->workers_done = s->workers_done;
    out->membership_epoch = s->membership_epoch;
    snprintf(out->members, sizeof out->members, "%s", s->members ? s->members : "");
    pstrain__task_status__free_unpacked(s, NULL);
    if (oom) {
        pst_task_status_report_destroy(out);
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory reading the status of %s", from);
    }
    return 0;
}

void pst_task_status_report_destroy(pst_task_status_report *r) {
    for (int i = 0; i < r->n_vars; i++) {
        free(r->vars[i].name);
        free(r->vars[i].full_name);
        free(r->vars[i].slice);
    }
    for (int i = 0; i < r->n_partitions; i++) {
        pst_task_status_partition *p = &r->partitions[i];
        for (int j = 0; j < p->n_nodes; j++) free(p->nodes[j]);
        free(p->nodes);
        free(p->handle);
        free(p->client);
    }
    free(r->vars);
    free(r->partitions);
    free(r->task);
    free(r->address);
    memset(r, 0, sizeof *r);
}

/* A growing text buffer; after a failed allocation it stays failed (text NULL). */
typedef struct text {
    char *s;
    size_t len, cap;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...) {
    if (!t->s) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    while (t->len + (size_t)k + 1 > t->cap) {
        char *n = realloc(t->s, t->cap * 2);
        if (!n) {
            free(t->s);
            t->s = NULL;
            return;
        }
        t->s = n;
        t->cap *= 2;
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)k;
}

char *pst_task_status_text(const pst_task_status_report *r) {
    text t = {.s = malloc(4096), .cap = 4096};
    if (!t.s) return NULL;
    t.s[0] = 0;
    char a[32], b[32], c[32];
    int64_t total = 0;
    for (int i = 0; i < r->n_vars; i++) total += r->vars[i].bytes;
    add(&t, "%s at %s: up %.1f s, %d variables (%s), received %s in %lld chunks, sent %s\n",
        r->task, r->address, r->uptime_s, r->n_vars, pst_format_bytes((double)total, a, sizeof a),
        pst_format_bytes((double)r->bytes_received, b, sizeof b), (long long)r->chunks_received,
        pst_format_bytes((double)r->bytes_sent, c, sizeof c));
    if (r->pending_bytes || r->pushes_refused || r->partials_expired)
        add(&t, "  pushes: %s arriving, %lld refused, %lld dropped incomplete\n",
            pst_format_bytes((double)r->pending_bytes, a, sizeof a), (long long)r->pushes_refused,
            (long long)r->partials_expired);
    for (int i = 0; i < r->n_vars; i++) {
        const pst_task_status_var *v = &r->vars[i];
        char shape[128] = "[";
        size_t so = 1;
        for (int d = 0; d < v->shape.rank && so < sizeof shape; d++)
            so += (size_t)snprintf(shape + so, sizeof shape - so, "%s%lld", d ? "," : "",
                                   (long long)v->shape.dims[d]);
        if (so < sizeof shape) snprintf(shape + so, sizeof shape - so, "]");
        add(&t, "  var %-40s %-8s %-16s %10lld bytes  pulls %lld  updates %lld", v->name,
            pst_dtype_name((pst_dtype)v->dtype), shape, (long long)v->bytes, (long long)v->pulls,
            (long long)v->updates);
        if (v->stale) add(&t, "  stale gradients dropped %lld", (long long)v->stale);
        if (!v->initialized) add(&t, "  (uninitialized)");
        if (v->full_name[0]) add(&t, "  slice of %s", v->full_name);
        add(&t, "\n");
        if (v->slice[0]) add(&t, "      slice %s\n", v->slice);
    }
    for (int i = 0; i < r->n_partitions; i++) {
        const pst_task_status_partition *p = &r->partitions[i];
        add(&t, "  partition %s from %s: %lld steps, %d ops\n", p->handle, p->client,
            (long long)p->steps, p->n_nodes);
        for (int j = 0; j < p->n_nodes; j++) add(&t, "      %s\n", p->nodes[j]);
    }
    return t.s;
}
