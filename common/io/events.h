/*
 * events — TensorBoard event files: TFRecord files of tensorflow.Event protos.
 *
 * A writer creates `<dir>/events.out.tfevents.<10-digit seconds>.<hostname><suffix>`, writes the
 * `file_version: "brain.Event:2"` event first and makes it durable, then appends scalar
 * summaries (Summary.Value{tag, simple_value}, as TF 1 writes them) and SessionLog events.
 *
 *     pst_events_writer *w = pst_events_writer_open("logs/worker-0", NULL, &st);
 *     pst_events_add_session_log(w, PST_EVENTS_START, restored_step, NULL, &st); // on resume
 *     pst_events_add_scalar(w, "loss", 0.42f, step, &st);
 *     pst_events_flush(w, &st);                  // TensorBoard sees it; fsync'd
 *     pst_events_writer_close(w, &st);
 *
 * Resuming: write SessionLog START at the restored global step before any new summary, so
 * TensorBoard drops the events of steps being redone (see shared FORMATS.md). Use one writer per
 * directory: TensorBoard reads a directory's files one after another and never returns to an
 * older one.
 *
 * A reader (for tests and tools) yields every event; scalars written TF 2 style (a one-element
 * float or double `tensor`, plugin "scalars") are read as scalars too.
 *
 *     pst_events_reader *r = pst_events_reader_open(path, &st);
 *     pst_event ev;
 *     while (pst_events_reader_next(r, &ev, &st) == 1) { ... }
 *     pst_events_reader_free(r);
 */
#ifndef PST_EVENTS_H
#define PST_EVENTS_H

#include <stdint.h>

#include "status.h"

#define PST_EVENTS_FILE_VERSION "brain.Event:2"

/* SessionLog.SessionStatus values. */
typedef enum pst_events_status {
    PST_EVENTS_STATUS_UNSPECIFIED = 0,
    PST_EVENTS_START = 1,
    PST_EVENTS_STOP = 2,
    PST_EVENTS_CHECKPOINT = 3,
    PST_EVENTS_STATUS_COUNT
} pst_events_status;

/* Which member of Event's oneof an event carries. */
typedef enum pst_events_kind {
    PST_EVENTS_KIND_NONE = 0, /* only wall_time and step */
    PST_EVENTS_KIND_FILE_VERSION,
    PST_EVENTS_KIND_SUMMARY,
    PST_EVENTS_KIND_SESSION_LOG,
    PST_EVENTS_KIND_OTHER, /* graph_def, log_message, run metadata, meta graph: not decoded */
    PST_EVENTS_KIND_COUNT
} pst_events_kind;

/* One Summary.Value. */
typedef struct pst_events_value {
    const char *tag;
    int has_scalar; /* simple_value, or a one-element float/double tensor */
    double scalar;
    const char *plugin; /* metadata.plugin_data.plugin_name; "" when absent */
} pst_events_value;

/* An event as written or read. Strings borrowed (reader: valid until the next call). */
typedef struct pst_event {
    double wall_time; /* seconds since the epoch */
    int64_t step;
    pst_events_kind kind;
    const char *file_version;       /* FILE_VERSION */
    const pst_events_value *values; /* SUMMARY */
    int n_values;
    pst_events_status status;    /* SESSION_LOG */
    const char *checkpoint_path; /* SESSION_LOG; NULL or "" when none */
    const char *msg;             /* SESSION_LOG; NULL or "" when none */
} pst_event;

/* "START", "STOP", "CHECKPOINT", "STATUS_UNSPECIFIED". */
const char *pst_events_status_name(pst_events_status s);

/* ---- writing ---- */

typedef struct pst_events_writer pst_events_writer;

/* Creates dir (with its parents) and a new event file in it (suffix NULL or e.g. ".v2"; the
 * name never replaces an existing file: PST_E_EXISTS), writes the file_version event and makes
 * the file and its directory entry durable. Returns a writer the caller closes, or NULL. */
pst_events_writer *pst_events_writer_open(const char *dir, const char *suffix, pst_status *st);
/* The file's path (borrowed). */
const char *pst_events_writer_path(const pst_events_writer *w);
/* Appends an event as given (wall_time included); a SUMMARY writes each value that has a scalar
 * as simple_value (float). */
int pst_events_write(pst_events_writer *w, const pst_event *ev, pst_status *st);
/* A scalar summary at step, stamped with the current time. */
int pst_events_add_scalar(pst_events_writer *w, const char *tag, float value, int64_t step,
                          pst_status *st);
/* A SessionLog event at step (START on resume, STOP at the end, CHECKPOINT after a save with
 * its path), stamped with the current time. checkpoint_path may be NULL. */
int pst_events_add_session_log(pst_events_writer *w, pst_events_status status, int64_t step,
                               const char *checkpoint_path, pst_status *st);
/* Writes out everything appended so far and fsyncs the file. */
int pst_events_flush(pst_events_writer *w, pst_status *st);
/* Flushes, fsyncs and frees w (whatever the outcome). */
int pst_events_writer_close(pst_events_writer *w, pst_status *st);

/* ---- reading ---- */

typedef struct pst_events_reader pst_events_reader;

pst_events_reader *pst_events_reader_open(const char *path, pst_status *st);
/* 1 with *ev filled, 0 at the end, negative with st naming the file and the record. */
int pst_events_reader_next(pst_events_reader *r, pst_event *ev, pst_status *st);
void pst_events_reader_free(pst_events_reader *r); /* NULL is fine */

#endif
