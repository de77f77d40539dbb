/* events: TensorBoard event files (see events.h), Event protos encoded by hand.
 *
 * Messages (field numbers from TensorFlow's event.proto and summary.proto; proto/tf_event.proto):
 *   Event { double wall_time = 1; int64 step = 2; oneof { string file_version = 3;
 *           bytes graph_def = 4; Summary summary = 5; LogMessage log_message = 6;
 *           SessionLog session_log = 7; TaggedRunMetadata tagged_run_metadata = 8;
 *           bytes meta_graph_def = 9; } }
 *   Summary { repeated Value value = 1; }
 *   Value { string tag = 1; float simple_value = 2; TensorProto tensor = 8;
 *           SummaryMetadata metadata = 9; }
 *   SummaryMetadata { PluginData plugin_data = 1; }  PluginData { string plugin_name = 1; }
 *   TensorProto { DataType dtype = 1; bytes tensor_content = 4; repeated float float_val = 5;
 *                 repeated double double_val = 6; }
 *   SessionLog { SessionStatus status = 1; string checkpoint_path = 2; string msg = 3; }
 */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "file.h"
#include "pbwire.h"
#include "tfrecord.h"

#define DT_FLOAT 1
#define DT_DOUBLE 2

static const char *const status_names[] = {"STATUS_UNSPECIFIED", "START", "STOP", "CHECKPOINT"};

const char *pst_events_status_name(pst_events_status s) {
    return (unsigned)s < PST_EVENTS_STATUS_COUNT ? status_names[s] : "invalid";
}

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ======================================== writer ======================================== */

struct pst_events_writer {
    pst_tfrecord_writer *rec;
    pst_pbwire_buf buf; /* one encoded Event, reused */
};

const char *pst_events_writer_path(const pst_events_writer *w) {
    return pst_tfrecord_writer_path(w->rec);
}

int pst_events_write(pst_events_writer *w, const pst_event *ev, pst_status *st) {
    pst_pbwire_buf *b = &w->buf;
    pst_pbwire_buf_reset(b);
    pst_pbwire_put_double(b, 1, ev->wall_time);
    if (ev->step != 0)
        pst_pbwire_put_varint(b, 2, (uint64_t)ev->step);
    switch (ev->kind) {
    case PST_EVENTS_KIND_FILE_VERSION:
        pst_pbwire_put_string(b, 3, ev->file_version ? ev->file_version : "");
        break;
    case PST_EVENTS_KIND_SUMMARY: {
        size_t m_sum = pst_pbwire_begin(b, 5);
        for (int i = 0; i < ev->n_values; i++) {
            const pst_events_value *v = &ev->values[i];
            size_t m_val = pst_pbwire_begin(b, 1);
            pst_pbwire_put_string(b, 1, v->tag ? v->tag : "");
            if (v->has_scalar)
                pst_pbwire_put_float(b, 2, (float)v->scalar);
            pst_pbwire_end(b, m_val);
        }
        pst_pbwire_end(b, m_sum);
        break;
    }
    case PST_EVENTS_KIND_SESSION_LOG: {
        if ((unsigned)ev->status >= PST_EVENTS_STATUS_COUNT)
            return pst_status_set(st, PST_E_INVALID,
                                  "%s: session log status %d is not one of "
                                  "START, STOP, CHECKPOINT",
                                  pst_events_writer_path(w), (int)ev->status);
        size_t m = pst_pbwire_begin(b, 7);
        if (ev->status != PST_EVENTS_STATUS_UNSPECIFIED)
            pst_pbwire_put_varint(b, 1, (uint64_t)ev->status);
        if (ev->checkpoint_path && ev->checkpoint_path[0])
            pst_pbwire_put_string(b, 2, ev->checkpoint_path);
        if (ev->msg && ev->msg[0])
            pst_pbwire_put_string(b, 3, ev->msg);
        pst_pbwire_end(b, m);
        break;
    }
    case PST_EVENTS_KIND_NONE:
        break;
    default:
        return pst_status_set(st, PST_E_INVALID, "%s: the event writer cannot write kind %d",
                              pst_events_writer_path(w), (int)ev->kind);
    }
    if (b->failed)
        return pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory encoding an event",
                              pst_events_writer_path(w));
    return pst_tfrecord_writer_write(w->rec, b->data, b->len, st);
}

pst_events_writer *pst_events_writer_open(const char *dir, const char *suffix, pst_status *st) {
    if (pst_file_make_dirs(dir, st) < 0)
        return NULL;
    char host[256];
    if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    for (char *c = host; *c; c++)
        if (*c == '/')
            *c = '_';
    double now = wall_now();
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/events.out.tfevents.%010lld.%s%s", dir, (long long)now,
                     host, suffix ? suffix : "");
    if (n < 0 || (size_t)n >= sizeof path) {
        pst_status_set(st, PST_E_INVALID, "event file name too long in %s", dir);
        return NULL;
    }
    pst_events_writer *w = calloc(1, sizeof *w);
    if (w == NULL) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory opening an event file in %s", dir);
        return NULL;
    }
    pst_pbwire_buf_init(&w->buf);
    pst_tfrecord_writer_opts o = {.compression = PST_TFRECORD_NONE, .exclusive = 1};
    w->rec = pst_tfrecord_writer_open(path, &o, st);
    if (w->rec == NULL) {
        if (st && st->code == PST_E_EXISTS)
            pst_status_prefix(st, "another event writer started in this directory this second "
                                  "(use one writer per directory): ");
        free(w);
        return NULL;
    }
    pst_event ev = {.wall_time = now,
                    .kind = PST_EVENTS_KIND_FILE_VERSION,
                    .file_version = PST_EVENTS_FILE_VERSION};
    if (pst_events_write(w, &ev, st) < 0 || pst_events_flush(w, st) < 0 ||
        pst_file_fsync_dir_of(path, st) < 0) {
        pst_tfrecord_writer_abort(w->rec);
        unlink(path);
        pst_pbwire_buf_destroy(&w->buf);
        free(w);
        return NULL;
    }
    return w;
}

int pst_events_add_scalar(pst_events_writer *w, const char *tag, float value, int64_t step,
                          pst_status *st) {
    pst_events_value v = {.tag = tag, .has_scalar = 1, .scalar = value};
    pst_event ev = {.wall_time = wall_now(),
                    .step = step,
                    .kind = PST_EVENTS_KIND_SUMMARY,
                    .values = &v,
                    .n_values = 1};
    return pst_events_write(w, &ev, st);
}

int pst_events_add_session_log(pst_events_writer *w, pst_events_status status, int64_t step,
                               const char *checkpoint_path, pst_status *st) {
    pst_event ev = {.wall_time = wall_now(),
                    .step = step,
                    .kind = PST_EVENTS_KIND_SESSION_LOG,
                    .status = status,
                    .checkpoint_path = checkpoint_path};
    return pst_events_write(w, &ev, st);
}

int pst_events_flush(pst_events_writer *w, pst_status *st) {
    return pst_tfrecord_writer_flush(w->rec, st);
}

int pst_events_writer_close(pst_events_writer *w, pst_status *st) {
    int rc = pst_tfrecord_writer_close(w->rec, st);
    pst_pbwire_buf_destroy(&w->buf);
    free(w);
    return rc;
}

/* ======================================== reader ======================================== */

struct pst_events_reader {
    pst_tfrecord_reader *rec;
    pst_pbwire_buf strings; /* NUL-terminated strings of the current event */
    pst_events_value *values;
    int values_cap;
    size_t *tag_off, *plugin_off; /* offsets into strings until it stops moving */
    size_t n_strings;
};

pst_events_reader *pst_events_reader_open(const char *path, pst_status *st) {
    pst_events_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory opening %s", path);
        return NULL;
    }
    pst_tfrecord_reader_opts o = {.compression = PST_TFRECORD_NONE};
    r->rec = pst_tfrecord_reader_open(path, &o, st);
    if (r->rec == NULL) {
        free(r);
        return NULL;
    }
    pst_pbwire_buf_init(&r->strings);
    return r;
}

void pst_events_reader_free(pst_events_reader *r) {
    if (r == NULL)
        return;
    pst_tfrecord_reader_free(r->rec);
    pst_pbwire_buf_destroy(&r->strings);
    free(r->values);
    free(r->tag_off);
    free(r->plugin_off);
    free(r);
}

/* Copies a string into the arena; returns its offset. */
static size_t keep(pst_events_reader *r, const uint8_t *p, size_t n) {
    size_t off = r->strings.len;
    pst_pbwire_put_raw(&r->strings, p, n);
    pst_pbwire_put_raw(&r->strings, "", 1);
    return off;
}

/* A one-element float or double TensorProto, as TF 2 writes scalars. */
static int tensor_scalar(const uint8_t *p, const uint8_t *end, double *out) {
    pst_pbwire_field f;
    uint64_t dtype = 0;
    int n = 0, r;
    double v = 0;
    const uint8_t *content = NULL;
    size_t content_len = 0;
    while ((r = pst_pbwire_next(&p, end, &f)) == 1) {
        if (f.number == 1 && f.wire_type == PST_PBWIRE_VARINT) {
            dtype = f.v;
        } else if (f.number == 4 && f.wire_type == PST_PBWIRE_LEN) {
            content = f.data;
            content_len = f.len;
        } else if (f.number == 5 && f.wire_type == PST_PBWIRE_FIXED32) {
            v = pst_pbwire_float_of((uint32_t)f.v);
            n++;
        } else if (f.number == 5 && f.wire_type == PST_PBWIRE_LEN && f.len % 4 == 0) {
            n += (int)(f.len / 4 > 2 ? 2 : f.len / 4);
            if (f.len >= 4)
                v = pst_pbwire_float_of(pst_pbwire_le32(f.data));
        } else if (f.number == 6 && f.wire_type == PST_PBWIRE_FIXED64) {
            v = pst_pbwire_double_of(f.v);
            n++;
        } else if (f.number == 6 && f.wire_type == PST_PBWIRE_LEN && f.len % 8 == 0) {
            n += (int)(f.len / 8 > 2 ? 2 : f.len / 8);
            if (f.len >= 8)
                v = pst_pbwire_double_of(pst_pbwire_le64(f.data));
        }
    }
    if (r < 0)
        return -1;
    if (content && dtype == DT_FLOAT && content_len == 4) {
        *out = pst_pbwire_float_of(pst_pbwire_le32(content));
        return 1;
    }
    if (content && dtype == DT_DOUBLE && content_len == 8) {
        *out = pst_pbwire_double_of(pst_pbwire_le64(content));
        return 1;
    }
    if (!content && (dtype == DT_FLOAT || dtype == DT_DOUBLE) && n == 1) {
        *out = v;
        return 1;
    }
    return 0;
}

static int parse_value(pst_events_reader *r, int i, const uint8_t *p, const uint8_t *end) {
    pst_events_value *v = &r->values[i];
    memset(v, 0, sizeof *v);
    r->tag_off[i] = r->plugin_off[i] = (size_t)-1;
    pst_pbwire_field f;
    int rc;
    while ((rc = pst_pbwire_next(&p, end, &f)) == 1) {
        if (f.number == 1 && f.wire_type == PST_PBWIRE_LEN) {
            r->tag_off[i] = keep(r, f.data, f.len);
        } else if (f.number == 2 && f.wire_type == PST_PBWIRE_FIXED32) {
            v->has_scalar = 1;
            v->scalar = pst_pbwire_float_of((uint32_t)f.v);
        } else if (f.number == 8 && f.wire_type == PST_PBWIRE_LEN) {
            int t = tensor_scalar(f.data, f.data + f.len, &v->scalar);
            if (t < 0)
                return -1;
            v->has_scalar = t;
        } else if (f.number == 9 && f.wire_type == PST_PBWIRE_LEN) {
            const uint8_t *q = f.data, *qend = f.data + f.len;
            pst_pbwire_field m;
            int mr;
            while ((mr = pst_pbwire_next(&q, qend, &m)) == 1) {
                if (m.number != 1 || m.wire_type != PST_PBWIRE_LEN)
                    continue;
                const uint8_t *d = m.data, *dend = m.data + m.len;
                pst_pbwire_field pd;
                int pr;
                while ((pr = pst_pbwire_next(&d, dend, &pd)) == 1)
                    if (pd.number == 1 && pd.wire_type == PST_PBWIRE_LEN)
                        r->plugin_off[i] = keep(r, pd.data, pd.len);
                if (pr < 0)
                    return -1;
            }
            if (mr < 0)
                return -1;
        }
    }
    return rc;
}

static int parse_summary(pst_events_reader *r, pst_event *ev, const uint8_t *p,
                         const uint8_t *end) {
    pst_pbwire_field f;
    int rc;
    while ((rc = pst_pbwire_next(&p, end, &f)) == 1) {
        if (f.number != 1 || f.wire_type != PST_PBWIRE_LEN)
            continue;
        if (ev->n_values == r->values_cap) {
            int c = r->values_cap ? r->values_cap * 2 : 8;
            pst_events_value *nv = realloc(r->values, (size_t)c * sizeof *nv);
            if (nv)
                r->values = nv;
            size_t *t = nv ? realloc(r->tag_off, (size_t)c * sizeof *t) : NULL;
            if (t)
                r->tag_off = t;
            size_t *pl = t ? realloc(r->plugin_off, (size_t)c * sizeof *pl) : NULL;
            if (pl == NULL)
                return -2;
            r->plugin_off = pl;
            r->values_cap = c;
        }
        if (parse_value(r, ev->n_values, f.data, f.data + f.len) < 0)
            return -1;
        ev->n_values++;
    }
    return rc;
}

int pst_events_reader_next(pst_events_reader *r, pst_event *ev, pst_status *st) {
    memset(ev, 0, sizeof *ev);
    const uint8_t *rec;
    size_t len;
    int rc = pst_tfrecord_reader_next(r->rec, &rec, &len, st);
    if (rc <= 0)
        return rc;
    pst_pbwire_buf_reset(&r->strings);
    size_t fv = (size_t)-1, ckpt = (size_t)-1, msg = (size_t)-1;
    const uint8_t *p = rec, *end = rec + len;
    pst_pbwire_field f;
    int pr;
    while ((pr = pst_pbwire_next(&p, end, &f)) == 1) {
        if (f.number == 1 && f.wire_type == PST_PBWIRE_FIXED64) {
            ev->wall_time = pst_pbwire_double_of(f.v);
        } else if (f.number == 2 && f.wire_type == PST_PBWIRE_VARINT) {
            ev->step = (int64_t)f.v;
        } else if (f.number == 3 && f.wire_type == PST_PBWIRE_LEN) {
            ev->kind = PST_EVENTS_KIND_FILE_VERSION;
            fv = keep(r, f.data, f.len);
        } else if (f.number == 5 && f.wire_type == PST_PBWIRE_LEN) {
            ev->kind = PST_EVENTS_KIND_SUMMARY;
            pr = parse_summary(r, ev, f.data, f.data + f.len);
            if (pr < 0)
                break;
        } else if (f.number == 7 && f.wire_type == PST_PBWIRE_LEN) {
            ev->kind = PST_EVENTS_KIND_SESSION_LOG;
            const uint8_t *q = f.data, *qend = f.data + f.len;
            pst_pbwire_field s;
            while ((pr = pst_pbwire_next(&q, qend, &s)) == 1) {
                if (s.number == 1 && s.wire_type == PST_PBWIRE_VARINT)
                    ev->status = s.v < PST_EVENTS_STATUS_COUNT ? (pst_events_status)s.v
                                                               : PST_EVENTS_STATUS_UNSPECIFIED;
                else if (s.number == 2 && s.wire_type == PST_PBWIRE_LEN)
                    ckpt = keep(r, s.data, s.len);
                else if (s.number == 3 && s.wire_type == PST_PBWIRE_LEN)
                    msg = keep(r, s.data, s.len);
            }
            if (pr < 0)
                break;
        } else if (f.number == 4 || f.number == 6 || f.number == 8 || f.number == 9) {
            ev->kind = PST_EVENTS_KIND_OTHER;
        }
    }
    const char *path = pst_tfrecord_reader_path(r->rec);
    long long idx = (long long)pst_tfrecord_reader_index(r->rec);
    if (pr == -2 || r->strings.failed)
        return pst_status_set(st, PST_E_EXHAUSTED, "%s: record %lld: out of memory", path, idx);
    if (pr < 0)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: record %lld is not a valid Event proto",
                              path, idx);
    /* The arena stopped moving: turn offsets into pointers. */
    const char *base = (const char *)r->strings.data;
    if (fv != (size_t)-1)
        ev->file_version = base + fv;
    if (ckpt != (size_t)-1)
        ev->checkpoint_path = base + ckpt;
    if (msg != (size_t)-1)
        ev->msg = base + msg;
    for (int i = 0; i < ev->n_values; i++) {
        r->values[i].tag = r->tag_off[i] != (size_t)-1 ? base + r->tag_off[i] : "";
        r->values[i].plugin = r->plugin_off[i] != (size_t)-1 ? base + r->plugin_off[i] : "";
    }
    ev->values = r->values;
    return 1;
}
