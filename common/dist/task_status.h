/*
 * task_status — what a task reports about itself (the TaskStatus message of the Status call):
 * its variables with shapes, bytes, pull, update and stale-gradient counts and slices, its
 * registered partitions with their ops and step counts, its traffic; decoded into plain
 * structs, and printed as the text `pstrain-worker --status` shows.
 *
 *     pst_task_status_report r;
 *     if (pst_task_client_report(t, "/job:ps/task:0", 0, &r, &st) == 0) {   // task_client.h
 *         char *text = pst_task_status_text(&r);
 *         fputs(text, stdout);
 *         free(text);
 *         pst_task_status_report_destroy(&r);
 *     }
 */
#ifndef PST_TASK_STATUS_H
#define PST_TASK_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef struct pst_task_status_var {
    char *name, *full_name, *slice; /* full_name/slice: "" unless a part of a partitioned var */
    int dtype, initialized;
    pst_shape shape;
    int64_t bytes, pulls, updates, stale;
} pst_task_status_var;

typedef struct pst_task_status_partition {
    char *handle, *client;
    int64_t steps;
    int n_nodes;
    char **nodes; /* "name (Op)" of the computational nodes */
} pst_task_status_partition;

typedef struct pst_task_status_report {
    char *task, *address;
    double uptime_s;
    int n_vars;
    pst_task_status_var *vars;
    int n_partitions;
    pst_task_status_partition *partitions;
    int64_t bytes_received, bytes_sent, chunks_received;
    int64_t pending_bytes, pushes_refused, partials_expired, graph_bytes;
    int workers_done;
    int64_t membership_epoch; /* launched jobs: the membership the task last heard of */
    char members[1024];       /* "index:incarnation:joined_s,..." of the running workers */
} pst_task_status_report;

/* Decodes a packed TaskStatus from the task at `from` (named in errors). Returns 0, or
 * PST_E_DATA_LOSS for a malformed message, PST_E_EXHAUSTED when out of memory; *out is then
 * empty. Destroy *out with pst_task_status_report_destroy. */
int pst_task_status_decode(const uint8_t *buf, size_t len, const char *from,
                           pst_task_status_report *out, pst_status *st);
void pst_task_status_report_destroy(pst_task_status_report *r);

/* The report as text lines: a header line, one per variable, one per partition and its ops.
 * Returns a malloc'd string the caller frees, NULL when out of memory. */
char *pst_task_status_text(const pst_task_status_report *r);

#endif
