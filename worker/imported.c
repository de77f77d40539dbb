/* imported: train a TensorFlow user's graph without its code (see imported.h). */
#include "imported.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "io_ops.h"
#include "ckpt_ops.h"
#include "meta_info.h"
#include "metagraph.h"
#include "op.h"
#include "ops.h"
#include "ops_queue.h"
#include "saver.h"
#include "varstore.h"

/* One thread of a queue runner: runs its enqueue op until the queue closes or stop. */
typedef struct qr_thread {
    struct pst_imported *m;
    int runner;
    pst_node *enqueue;
    pthread_t tid;
} qr_thread;

struct pst_imported {
    pst_graph *g;
    pst_session *s;
    pst_tf_saver_names saver;
    pst_tf_queue_runner *qr; /* the meta graph's queue runners */
    int n_qr;
    /* Started queue runners (pst_imported_start_queue_runners). */
    qr_thread *threads;
    int n_threads;
    int *live;               /* per runner: threads still running its enqueue ops */
    pst_feed *qr_feeds;      /* applied to every enqueue run (values referenced) */
    int n_qr_feeds;
    pthread_mutex_t qr_mu;   /* live, qr_err */
    atomic_int qr_stop;
    pst_status qr_err;       /* the first error of a runner thread */
    /* Without a session (a distributed worker): how input ops run, where their resources are */
    pst_imported_run_fn run;
    void *run_ctx;
    pst_var_store *run_vars;
};

/* TF's colocation: `_class: ["loc:@NAME"]` and ops that take a variable by reference run on
 * the device of NAME / the variable. */
static int colocate(pst_graph *g, pst_status *st) {
    for (int id = 0; id < pst_graph_num_nodes(g); id++) {
        pst_node *n = pst_graph_node(g, id);
        const pst_node *with = NULL;
        const pst_attr *cls = pst_node_attr(n, "_class");
        if (cls && cls->kind == PST_ATTR_LIST_STRING && cls->n > 0 &&
            strncmp(cls->list.s[0], "loc:@", 5) == 0)
            with = pst_graph_find(g, cls->list.s[0] + 5);
        unsigned mask = pst_op_ref_mask(n->op);
        for (int i = 0; i < n->n_inputs && i < 32 && !with; i++)
            if (((mask >> i) & 1) && (n->inputs[i].node->op->flags & PST_OP_VARIABLE))
                with = n->inputs[i].node;
        if (with && with != n && strcmp(with->device, n->device) != 0 &&
            pst_node_set_device(n, with->device, st) < 0) {
            pst_status_prefix(st, "node '%s': ", n->name);
            return st->code;
        }
    }
    return 0;
}

pst_imported *pst_imported_load_ex(const char *path, const pst_imported_opts *o, pst_status *st) {
    pst_ckpt_ops_init();
    pst_io_ops_init();
    uint8_t *buf;
    size_t len;
    if (pst_meta_info_read(path, &buf, &len, st) < 0) return NULL;
    pst_imported *m = calloc(1, sizeof *m);
    PST_ASSERT(m != NULL);
    m->g = pst_graph_new();
    if (o && o->device_fn) pst_graph_set_device_fn(m->g, o->device_fn, o->device_ctx);
    pst_meta_import_opts io = {.clear_devices = o ? o->clear_devices : 0};
    pthread_mutex_init(&m->qr_mu, NULL);
    int rc = pst_meta_info_saver(buf, len, &m->saver, st);
    if (rc == 0) rc = pst_meta_info_queue_runners(buf, len, &m->qr, &m->n_qr, st);
    if (rc == 0) rc = pst_meta_graph_import(m->g, buf, len, &io, st);
    free(buf);
    if (o && o->device_fn) pst_graph_set_device_fn(m->g, NULL, NULL);
    if (rc == 0 && o && o->device_fn) rc = colocate(m->g, st);
    if (rc == 0 && !(o && o->no_session) && (m->s = pst_session_new(m->g, NULL, st)) == NULL)
        rc = st->code;
    if (rc < 0) {
        pst_status_prefix(st, "%s: ", path);
        pst_imported_free(m);
        return NULL;
    }
    return m;
}

pst_imported *pst_imported_load(const char *path, pst_status *st) {
    return pst_imported_load_ex(path, NULL, st);
}

void pst_imported_free(pst_imported *m) {
    if (m == NULL) return;
    pst_status ignored = {0};
    pst_imported_stop_queue_runners(m, &ignored);
    pst_meta_info_free_queue_runners(m->qr, m->n_qr);
    pthread_mutex_destroy(&m->qr_mu);
    pst_session_free(m->s);
    pst_graph_free(m->g);
    free(m);
}

pst_graph *pst_imported_graph(pst_imported *m) { return m->g; }
pst_session *pst_imported_session(pst_imported *m) { return m->s; }

void pst_imported_set_runner(pst_imported *m, pst_imported_run_fn run, void *ctx,
                             pst_var_store *vars) {
    m->run = run;
    m->run_ctx = ctx;
    m->run_vars = vars;
}

pst_var_store *pst_imported_vars(pst_imported *m) {
    return m->s ? pst_session_vars(m->s) : m->run_vars;
}

int pst_imported_run_targets(pst_imported *m, const pst_feed *feeds, int n_feeds,
                             pst_node *const *targets, int n_targets, pst_status *st) {
    if (m->s)
        return pst_session_run(m->s, feeds, n_feeds, NULL, 0, targets, n_targets, NULL, st);
    if (m->run) return m->run(m->run_ctx, feeds, n_feeds, targets, n_targets, st);
    return pst_status_set(st, PST_E_PRECONDITION, "no session or runner to run '%s'",
                          n_targets > 0 ? targets[0]->name : "?");
}

int pst_imported_missing_ops_of(const char *path, char ***ops, int *n, pst_status *st) {
    pst_ckpt_ops_init();
    pst_io_ops_init();
    uint8_t *buf;
    size_t len;
    *ops = NULL;
    *n = 0;
    if (pst_meta_info_read(path, &buf, &len, st) < 0) return st->code;
    char **all;
    int na;
    int rc = pst_meta_info_op_types(buf, len, &all, &na, st);
    free(buf);
    if (rc < 0) return rc;
    int k = 0;
    for (int i = 0; i < na; i++) {
        if (pst_op_lookup(all[i]) == NULL)
            all[k++] = all[i];
        else
            free(all[i]);
    }
    *ops = all;
    *n = k;
    return 0;
}


/* ---- Queue runners (tf.train.start_queue_runners) -------------------------------------- */

int pst_imported_num_queue_runners(const pst_imported *m) { return m->n_qr; }

static void run_named(pst_imported *m, const char *name) {
    pst_node *n = name && name[0] ? pst_graph_find(m->g, name) : NULL;
    pst_status ignored = {0};
    if (n) pst_imported_run_targets(m, NULL, 0, &n, 1, &ignored);
}

/* Closes every runner's queue, cancelling pending enqueues, so every blocked thread (and a
 * training step waiting on a dequeue) wakes up. */
/* Closes runner i's queue directly (adopted runners have no close or cancel op). */
static void close_directly(pst_imported *m, int i, int cancel) {
    pst_node *qn = pst_graph_find(m->g, m->qr[i].queue);
    const char *shared = qn ? pst_node_attr_s(qn, "shared_name", "") : "";
    char key[1200];
    snprintf(key, sizeof key, "queue:%s", shared[0] ? shared : m->qr[i].queue);
    pst_var_store *vs = pst_imported_vars(m);
    pst_queue *q = vs ? pst_var_store_find_resource(vs, key) : NULL;
    if (q) pst_queue_close(q, cancel);
}

static void cancel_all(pst_imported *m) {
    for (int i = 0; i < m->n_qr; i++) {
        if (m->qr[i].cancel_op[0]) run_named(m, m->qr[i].cancel_op);
        else close_directly(m, i, 1);
    }
}

static void *qr_main(void *p) {
    qr_thread *t = p;
    pst_imported *m = t->m;
    const pst_tf_queue_runner *r = &m->qr[t->runner];
    while (!atomic_load(&m->qr_stop)) {
        pst_status st = {0};
        if (pst_imported_run_targets(m, m->qr_feeds, m->n_qr_feeds, &t->enqueue, 1, &st) == 0)
            continue;
        int closed = 0;
        for (int i = 0; i < r->n_closed_codes; i++) closed |= st.code == r->closed_codes[i];
        if (closed || atomic_load(&m->qr_stop)) break;
        /* A real error: remember it and stop everything, as TF's coordinator does. */
        pthread_mutex_lock(&m->qr_mu);
        if (m->qr_err.code == 0) {
            m->qr_err = st;
            pst_status_prefix(&m->qr_err, "queue runner of '%s': ", r->queue);
        }
        pthread_mutex_unlock(&m->qr_mu);
        atomic_store(&m->qr_stop, 1);
        cancel_all(m);
        break;
    }
    pthread_mutex_lock(&m->qr_mu);
    int last = --m->live[t->runner] == 0;
    pthread_mutex_unlock(&m->qr_mu);
    if (last && !atomic_load(&m->qr_stop)) {
        if (r->close_op[0]) run_named(m, r->close_op);
        else close_directly(m, t->runner, 0);
    }
    return NULL;
}

int pst_imported_start_queue_runners(pst_imported *m, const pst_feed *feeds, int n_feeds,
                                     pst_status *st) {
    if (m->threads || (m->s == NULL && m->run == NULL))
        return pst_status_set(st, PST_E_PRECONDITION, m->threads ? "queue runners already started"
                                                                 : "no session to run queue runners");
    int total = 0;
    for (int i = 0; i < m->n_qr; i++) {
        total += m->qr[i].n_enqueue_ops;
        for (int j = 0; j < m->qr[i].n_enqueue_ops; j++)
            if (pst_graph_find(m->g, m->qr[i].enqueue_ops[j]) == NULL)
                return pst_status_set(st, PST_E_NOT_FOUND, "queue runner of '%s' names enqueue "
                                      "op '%s', which is not in the graph", m->qr[i].queue,
                                      m->qr[i].enqueue_ops[j]);
    }
    if (total == 0) return 0;
    m->threads = calloc((size_t)total, sizeof *m->threads);
    m->live = calloc((size_t)m->n_qr, sizeof *m->live);
    m->qr_feeds = calloc((size_t)n_feeds + 1, sizeof *m->qr_feeds);
    PST_ASSERT(m->threads && m->live && m->qr_feeds);
    for (int i = 0; i < n_feeds; i++) {
        m->qr_feeds[i].output = feeds[i].output;
        m->qr_feeds[i].value = pst_tensor_ref(feeds[i].value);
    }
    m->n_qr_feeds = n_feeds;
    atomic_store(&m->qr_stop, 0);
    memset(&m->qr_err, 0, sizeof m->qr_err);
    for (int i = 0; i < m->n_qr; i++) m->live[i] = m->qr[i].n_enqueue_ops;
    int rc = 0;
    for (int i = 0; i < m->n_qr && rc == 0; i++)
        for (int j = 0; j < m->qr[i].n_enqueue_ops && rc == 0; j++) {
            qr_thread *t = &m->threads[m->n_threads];
            *t = (qr_thread){m, i, pst_graph_find(m->g, m->qr[i].enqueue_ops[j]), 0};
            if (pthread_create(&t->tid, NULL, qr_main, t) != 0)
                rc = pst_status_set(st, PST_E_EXHAUSTED, "cannot start a queue runner thread");
            else
                m->n_threads++;
        }
    if (rc < 0) pst_imported_stop_queue_runners(m, &(pst_status){0});
    return rc;
}

static int is_dequeue(const pst_node *n) { return strncmp(n->op->name, "QueueDequeue", 12) == 0; }
static int is_enqueue(const pst_node *n) { return strncmp(n->op->name, "QueueEnqueue", 12) == 0; }

/* The queues the targets, and the enqueue ops of every runner so far, dequeue from or read file
 * names from: fills want[queue id] = 1. */
static void queues_needed(pst_imported *m, pst_node *const *targets, int n_targets, char *want) {
    int nn = pst_graph_num_nodes(m->g), nt = n_targets;
    pst_node **all = calloc((size_t)nn + (size_t)n_targets + 1, sizeof *all);
    PST_ASSERT(all != NULL);
    memcpy(all, targets, (size_t)n_targets * sizeof *all);
    for (int i = 0; i < m->n_qr; i++)
        for (int j = 0; j < m->qr[i].n_enqueue_ops && nt < nn + n_targets; j++) {
            pst_node *e = pst_graph_find(m->g, m->qr[i].enqueue_ops[j]);
            if (e) all[nt++] = e;
        }
    char *need = pst_imported_ancestors(m->g, all, nt);
    for (int id = 0; id < nn; id++) {
        pst_node *d = pst_graph_node(m->g, id);
        int reader = strncmp(d->op->name, "ReaderRead", 10) == 0; /* takes file names */
        if (need[id] && (is_dequeue(d) || reader) && d->n_inputs >= (reader ? 2 : 1))
            want[d->inputs[reader ? 1 : 0].node->id] = 1;
    }
    free(need);
    free(all);
}

int pst_imported_adopt_enqueue_ops(pst_imported *m, pst_node *const *targets, int n_targets) {
    int nn = pst_graph_num_nodes(m->g), added = 0, more = 1;
    char *want = calloc((size_t)nn + 1, 1);
    PST_ASSERT(want != NULL);
    while (more) { /* a runner adopted can read from another queue in turn */
        more = 0;
        memset(want, 0, (size_t)nn);
        queues_needed(m, targets, n_targets, want);
        for (int id = 0; id < nn; id++) {
            pst_node *q = pst_graph_node(m->g, id);
            if (!want[id]) continue;
            int has = 0;
            for (int i = 0; i < m->n_qr; i++) has |= strcmp(m->qr[i].queue, q->name) == 0;
            if (has) continue;
            char **ops = calloc((size_t)nn + 1, sizeof *ops);
            PST_ASSERT(ops != NULL);
            int k = 0;
            for (int j = 0; j < nn; j++) {
                pst_node *e = pst_graph_node(m->g, j);
                if (is_enqueue(e) && e->n_inputs > 0 && e->inputs[0].node == q)
                    ops[k++] = strdup(e->name);
            }
            if (k == 0) {
                free(ops);
                continue;
            }
            pst_tf_queue_runner *qr = realloc(m->qr, (size_t)(m->n_qr + 1) * sizeof *qr);
            PST_ASSERT(qr != NULL);
            m->qr = qr;
            pst_tf_queue_runner *r = &m->qr[m->n_qr++];
            memset(r, 0, sizeof *r);
            r->queue = strdup(q->name);
            r->close_op = strdup("");
            r->cancel_op = strdup("");
            r->enqueue_ops = ops;
            r->n_enqueue_ops = k;
            r->closed_codes[0] = PST_E_OUT_OF_RANGE;
            r->closed_codes[1] = PST_E_CANCELLED;
            r->n_closed_codes = 2;
            PST_ASSERT(r->queue && r->close_op && r->cancel_op);
            added++;
            more = 1;
        }
    }
    free(want);
    return added;
}

int pst_imported_queue_runner_error(pst_imported *m, pst_status *st) {
    pthread_mutex_lock(&m->qr_mu);
    int rc = m->qr_err.code;
    if (rc) *st = m->qr_err;
    pthread_mutex_unlock(&m->qr_mu);
    return rc;
}

int pst_imported_stop_queue_runners(pst_imported *m, pst_status *st) {
    if (m->threads == NULL) return 0;
    atomic_store(&m->qr_stop, 1);
    cancel_all(m);
    for (int i = 0; i < m->n_threads; i++) pthread_join(m->threads[i].tid, NULL);
    for (int i = 0; i < m->n_qr_feeds; i++) pst_tensor_unref(m->qr_feeds[i].value);
    free(m->threads), free(m->live), free(m->qr_feeds);
    m->threads = NULL;
    m->live = NULL;
    m->qr_feeds = NULL;
    m->n_threads = m->n_qr_feeds = 0;
    return pst_imported_queue_runner_error(m, st);
}

/* ---- Variables ------------------------------------------------------------------------- */

static int is_variable(const pst_node *n) { return (n->op->flags & PST_OP_VARIABLE) != 0; }

int pst_imported_initializers(pst_imported *m, pst_node ***out, int *n, pst_status *st) {
    int nn = pst_graph_num_nodes(m->g), nt = 0;
    pst_node **targets = calloc((size_t)nn + 1, sizeof *targets);
    PST_ASSERT(targets != NULL);
    for (int i = 0; i < nn; i++) {
        pst_node *v = pst_graph_node(m->g, i);
        if (!is_variable(v)) continue;
        char name[1100];
        snprintf(name, sizeof name, "%s/Assign", v->name);
        pst_node *a = pst_graph_find(m->g, name);
        if (a == NULL || a->n_inputs < 1 || a->inputs[0].node != v) {
            free(targets);
            return pst_status_set(st, PST_E_NOT_FOUND, "variable '%s' has no initializer '%s'",
                                  v->name, name);
        }
        targets[nt++] = a;
    }
    *out = targets;
    *n = nt;
    return 0;
}

int pst_imported_init(pst_imported *m, pst_status *st) {
    pst_node **targets;
    int nt;
    if (pst_imported_initializers(m, &targets, &nt, st) < 0) return st->code;
    int rc = nt > 0 ? pst_session_run(m->s, NULL, 0, NULL, 0, targets, nt, NULL, st) : 0;
    free(targets);
    /* Lookup tables are filled by the ops of TF's table_initializer collection
     * (tf.tables_initializer). */
    int nc;
    const pst_output *c = pst_graph_collection(m->g, "table_initializer", &nc);
    for (int i = 0; i < nc && rc == 0; i++) {
        pst_node *n = c[i].node;
        if (n) rc = pst_session_run(m->s, NULL, 0, NULL, 0, &n, 1, NULL, st);
    }
    return rc;
}

/* Compares every variable the checkpoint holds under the variable's name with its value. */
static int check_restored(pst_imported *m, const char *prefix, int *n_checked, pst_status *st) {
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, st);
    if (r == NULL) return st->code;
    int rc = 0, checked = 0;
    for (int i = 0; i < pst_graph_num_nodes(m->g) && rc == 0; i++) {
        pst_node *v = pst_graph_node(m->g, i);
        if (!is_variable(v) || pst_bundle_reader_find(r, v->name) == NULL) continue;
        pst_var *var = pst_var_store_find(pst_session_vars(m->s), v->name);
        pst_tensor *have = var ? pst_var_read(var) : NULL;
        pst_tensor *want = pst_bundle_reader_read(r, v->name, st);
        if (want == NULL) {
            rc = st->code;
        } else if (have == NULL || have->dtype != want->dtype ||
                   !pst_shape_equal(&have->shape, &want->shape) ||
                   (have->dtype != PST_STRING && memcmp(have->data, want->data, have->nbytes))) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "variable '%s' does not hold the value of "
                                "checkpoint %s after the restore", v->name, prefix);
        } else {
            checked++;
        }
        pst_tensor_unref(have);
        pst_tensor_unref(want);
    }
    pst_bundle_reader_free(r);
    if (n_checked) *n_checked = checked;
    return rc;
}

int pst_imported_restore(pst_imported *m, const char *prefix, int *n_checked, pst_status *st) {
    int rc;
    if (m->saver.present && m->saver.restore_op[0]) {
        pst_output fname = pst_graph_output_by_name(m->g, m->saver.filename_tensor);
        pst_node *op = pst_graph_find(m->g, m->saver.restore_op);
        if (fname.node == NULL || op == NULL)
            return pst_status_set(st, PST_E_NOT_FOUND, "the SaverDef names '%s' and '%s', which "
                                  "are not both in the graph", m->saver.filename_tensor,
                                  m->saver.restore_op);
        pst_tensor *p = pst_tensor_scalar_str(prefix);
        pst_feed f = {fname, p};
        rc = pst_session_run(m->s, &f, 1, NULL, 0, &op, 1, NULL, st);
        pst_tensor_unref(p);
    } else {
        pst_saver *sv = pst_saver_new(m->g, &(pst_saver_opts){.write_meta = 0}, st);
        if (sv == NULL) return st->code;
        rc = pst_saver_restore(sv, m->s, prefix, st);
        pst_saver_free(sv);
    }
    if (rc < 0) return rc;
    return check_restored(m, prefix, n_checked, st);
}

int pst_imported_save(pst_imported *m, const char *prefix, pst_status *st) {
    if (!(m->saver.present && m->saver.save_tensor[0])) {
        pst_saver *sv = pst_saver_new(m->g, &(pst_saver_opts){.write_meta = 0}, st);
        if (sv == NULL) return st->code;
        char out[4096];
        int rc = pst_saver_save(sv, m->s, prefix, -1, out, sizeof out, st);
        pst_saver_free(sv);
        return rc;
    }
    pst_output fname = pst_graph_output_by_name(m->g, m->saver.filename_tensor);
    pst_output save = pst_graph_output_by_name(m->g, m->saver.save_tensor);
    if (fname.node == NULL || save.node == NULL)
        return pst_status_set(st, PST_E_NOT_FOUND, "the SaverDef names '%s' and '%s', which are "
                              "not both in the graph", m->saver.filename_tensor,
                              m->saver.save_tensor);
    pst_tensor *p = pst_tensor_scalar_str(prefix), *out[1] = {NULL};
    pst_feed f = {fname, p};
    int rc = pst_session_run(m->s, &f, 1, &save, 1, NULL, 0, out, st);
    pst_tensor_unref(out[0]);
    pst_tensor_unref(p);
    return rc;
}

/* ---- Train op, loss, placeholders ------------------------------------------------------ */

/* need[i] = 1 for every node the targets depend on (inputs and control inputs). */
char *pst_imported_ancestors(pst_graph *g, pst_node *const *targets, int n) {
    int nn = pst_graph_num_nodes(g);
    char *need = calloc((size_t)nn + 1, 1);
    PST_ASSERT(need != NULL);
    for (int i = 0; i < n; i++) need[targets[i]->id] = 1;
    for (int id = nn - 1; id >= 0; id--) {
        if (!need[id]) continue;
        pst_node *x = pst_graph_node(g, id);
        for (int i = 0; i < x->n_inputs; i++) need[x->inputs[i].node->id] = 1;
        for (int i = 0; i < x->n_control; i++) need[x->control_inputs[i]->id] = 1;
    }
    return need;
}

static int is_apply_op(const pst_node *n) {
    const char *op = n->op->name;
    return strncmp(op, "Apply", 5) == 0 || strncmp(op, "ResourceApply", 13) == 0 ||
           strncmp(op, "SparseApply", 11) == 0 || strncmp(op, "ResourceSparseApply", 19) == 0;
}

pst_node *pst_imported_train_op(pst_imported *m, const char *name, pst_status *st) {
    if (name && name[0]) {
        pst_output o = pst_graph_output_by_name(m->g, name);
        pst_node *n = o.node ? o.node : pst_graph_find(m->g, name);
        if (n == NULL) pst_status_set(st, PST_E_NOT_FOUND, "train op '%s' is not in the graph", name);
        return n;
    }
    int nc;
    const pst_output *c = pst_graph_collection(m->g, PST_TRAIN_OP, &nc);
    for (int i = 0; i < nc; i++)
        if (c[i].node) return c[i].node;
    int nn = pst_graph_num_nodes(m->g);
    char *consumed = calloc((size_t)nn + 1, 1);
    PST_ASSERT(consumed != NULL);
    for (int id = 0; id < nn; id++) {
        pst_node *x = pst_graph_node(m->g, id);
        for (int i = 0; i < x->n_inputs; i++) consumed[x->inputs[i].node->id] = 1;
        for (int i = 0; i < x->n_control; i++) consumed[x->control_inputs[i]->id] = 1;
    }
    pst_node *best = NULL;
    int best_n = 0;
    for (int id = 0; id < nn; id++) {
        pst_node *x = pst_graph_node(m->g, id);
        if (consumed[id]) continue;
        char *need = pst_imported_ancestors(m->g, &x, 1);
        int k = 0;
        for (int j = 0; j < nn; j++) k += need[j] && is_apply_op(pst_graph_node(m->g, j));
        free(need);
        if (k > best_n) {
            best = x;
            best_n = k;
        }
    }
    free(consumed);
    if (best == NULL)
        pst_status_set(st, PST_E_NOT_FOUND, "the graph has no train op (no train_op collection, "
                       "and no node depends on an optimizer's apply op); name one");
    return best;
}

/* The loss tf.gradients started from: ".../gradients/Fill" (ones shaped like the loss) feeds
 * ".../gradients/LOSS_grad/...", whose name gives the loss node's full name. */
pst_output pst_imported_loss(pst_imported *m, pst_node *train_op) {
    char *need = pst_imported_ancestors(m->g, &train_op, 1);
    pst_output loss = {NULL, 0};
    /* First among the train op's ancestors; else anywhere (the seed can reach the apply ops
     * only through a while loop's stacks, which the ancestor walk does not follow). */
    int nn = pst_graph_num_nodes(m->g);
    for (int k = 0; k < 2 * nn && !loss.node; k++) {
        int id = k % nn, pass = k / nn;
        pst_node *x = pst_graph_node(m->g, id);
        const char *gr = strstr(x->name, "gradients/");
        const char *cut = gr ? strstr(gr, "_grad/") : NULL;
        if ((pass == 0 && !need[id]) || cut == NULL) continue;
        int seeded = 0;
        for (int i = 0; i < x->n_inputs; i++) {
            const char *in = x->inputs[i].node->name, *slash = strrchr(in, '/');
            seeded |= slash && strcmp(slash, "/Fill") == 0 && strstr(in, "gradients/") != NULL;
        }
        if (!seeded) continue;
        /* tf.gradients names its ops "[SCOPE/]gradients/" + the op's full name + "_grad". */
        char name[1100];
        size_t len = (size_t)(cut - gr) - 10;
        if (len >= sizeof name) continue;
        memcpy(name, gr + 10, len);
        name[len] = '\0';
        pst_node *l = pst_graph_find(m->g, name);
        if (l && l->n_outputs > 0 && pst_dtype_is_float(l->out_dtypes[0])) loss = pst_out(l, 0);
    }
    free(need);
    return loss;
}

int pst_imported_placeholders(pst_imported *m, pst_node *const *targets, int n_targets,
                              pst_output **out, int *n) {
    char *need = pst_imported_ancestors(m->g, targets, n_targets);
    int nn = pst_graph_num_nodes(m->g), k = 0;
    *out = calloc((size_t)nn + 1, sizeof **out);
    PST_ASSERT(*out != NULL);
    for (int id = 0; id < nn; id++) {
        pst_node *x = pst_graph_node(m->g, id);
        if (need[id] && strcmp(x->op->name, "Placeholder") == 0) (*out)[k++] = pst_out(x, 0);
    }
    free(need);
    *n = k;
    return 0;
}

static int is_pass_op(const pst_node *n) {
    static const char *const ops[] = {"Reshape", "Identity", "StopGradient", "Cast", NULL};
    for (int i = 0; ops[i]; i++)
        if (strcmp(n->op->name, ops[i]) == 0) return 1;
    return 0;
}

static int is_pairing_op(const pst_node *n) {
    static const char *const ops[] = {"Sub", "Add", "AddV2", "Mul", "Equal", "SquaredDifference",
                                      "SoftmaxCrossEntropyWithLogits", "RealDiv", NULL};
    for (int i = 0; ops[i]; i++)
        if (strcmp(n->op->name, ops[i]) == 0) return n->n_inputs == 2;
    return 0;
}

/* The first known-rank shape found walking up through reshapes, identities and casts. */
static int known_upstream(pst_output o, pst_shape *s) {
    for (int depth = 0; depth < 8 && o.node; depth++) {
        pst_shape sh = pst_output_shape(o);
        if (sh.rank >= 0) {
            *s = sh;
            return 0;
        }
        if (!is_pass_op(o.node) || o.node->n_inputs < 1) break;
        o = o.node->inputs[0];
    }
    return -1;
}

/* A shape for a placeholder of unknown rank (old graphs, or shape=None) from what consumes
 * it, looking through reshapes, identities and casts: MatMul's other operand, the other
 * operand of an elementwise op or a softmax cross entropy (labels shaped like logits; partners
 * of different shapes mean a scalar broadcast to each, like a dropout keep_prob), or a vector
 * of class ids for OneHot. */
static int infer_unknown_rank(pst_output ph, pst_shape *s) {
    pst_graph *g = ph.node->graph;
    int have = 0; /* a shape from an elementwise partner; two that differ: a broadcast scalar */
    pst_shape cand;
    pst_node *cur[8];
    int ncur = 1;
    cur[0] = ph.node;
    for (int depth = 0; depth < 4 && ncur > 0; depth++) {
        pst_node *next[8];
        int nnext = 0;
        for (int id = 0; id < pst_graph_num_nodes(g); id++) {
            pst_node *x = pst_graph_node(g, id);
            for (int i = 0; i < x->n_inputs; i++) {
                int hit = 0;
                for (int c = 0; c < ncur; c++) hit |= x->inputs[i].node == cur[c];
                if (!hit) continue;
                if (strcmp(x->op->name, "MatMul") == 0 && i == 0) {
                    pst_shape w = pst_output_shape(x->inputs[1]);
                    int tb = pst_node_attr_b(x, "transpose_b", 0);
                    if (w.rank == 2 && w.dims[tb ? 1 : 0] >= 0) {
                        *s = pst_shape_2d(-1, w.dims[tb ? 1 : 0]);
                        return 0;
                    }
                }
                if (strcmp(x->op->name, "OneHot") == 0 && i == 0 && depth == 0) {
                    *s = pst_shape_1d(-1);
                    return 0;
                }
                pst_shape o;
                if (is_pairing_op(x) && known_upstream(x->inputs[1 - i], &o) == 0) {
                    if (have && !pst_shape_equal(&o, &cand)) {
                        *s = pst_shape_scalar();
                        return 0;
                    }
                    cand = o;
                    have = 1;
                }
                if (is_pass_op(x) && i == 0 && nnext < 8) next[nnext++] = x;
            }
        }
        memcpy(cur, next, (size_t)nnext * sizeof *cur);
        ncur = nnext;
    }
    if (have) *s = cand;
    return have ? 0 : -1;
}

int pst_imported_batch_hint(const pst_output *ph, int n, int dflt) {
    for (int i = 0; i < n; i++) {
        pst_shape s = pst_output_shape(ph[i]);
        if (s.rank >= 2 && s.dims[0] > 0 && s.dims[0] <= 4096) return (int)s.dims[0];
    }
    return dflt;
}

static int name_says_length(const char *name) {
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    for (const char *p = base; *p; p++) /* "len", "Len", "LEN": length(s), seq_len, ... */
        if ((p[0] | 32) == 'l' && (p[1] | 32) == 'e' && (p[2] | 32) == 'n') return 1;
    return 0;
}

/* An integer placeholder holding sequence lengths: its name says so ("seq_len",
 * "target_lengths", ...), or a consumer (directly or through casts and identities) does:
 * dynamic_rnn's ".../sequence_length" identity, ReverseSequence's seq_lengths. */
static int is_length_placeholder(pst_output ph) {
    if (!pst_dtype_is_int(pst_output_dtype(ph))) return 0;
    if (name_says_length(ph.node->name)) return 1;
    pst_graph *g = ph.node->graph;
    pst_node *cur = ph.node;
    for (int depth = 0; depth < 3 && cur; depth++) {
        pst_node *next = NULL;
        for (int id = 0; id < pst_graph_num_nodes(g); id++) {
            pst_node *x = pst_graph_node(g, id);
            for (int i = 0; i < x->n_inputs; i++) {
                if (x->inputs[i].node != cur) continue;
                if (strstr(x->name, "sequence_length") ||
                    (strncmp(x->op->name, "ReverseSequence", 15) == 0 && i == 1))
                    return 1;
                if (is_pass_op(x)) next = x;
            }
        }
        cur = next;
    }
    return 0;
}

pst_tensor *pst_imported_synthetic_feed(pst_output ph, int batch, uint64_t seed, pst_status *st) {
    pst_shape s = pst_output_shape(ph);
    if (s.rank < 0 && infer_unknown_rank(ph, &s) < 0) {
        pst_status_set(st, PST_E_INVALID, "placeholder '%s' has an unknown shape; feed it",
                       ph.node->name);
        return NULL;
    }
    for (int d = 0; d < s.rank; d++) /* the batch, and short sequences / small sizes */
        if (s.dims[d] < 0) s.dims[d] = d == 0 ? batch : 2;
    pst_dtype dt = pst_output_dtype(ph);
    pst_tensor *t = pst_tensor_new_zeros(dt, s, st);
    if (t == NULL) return NULL;
    /* Sequence lengths: every sequence as long as the synthetic unknown dims (2), so lengths
     * from different placeholders agree with each other and with the data's time dims. */
    int lengths = s.rank >= 1 && is_length_placeholder(ph);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < t->n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (pst_dtype_is_float(dt))
            pst_tensor_set_f64(t, i, 0.25 + 0.5 * (double)(x >> 11) / 9007199254740992.0);
        else if (dt == PST_BOOL)
            pst_tensor_u8(t)[i] = 1;
        else if (lengths)
            pst_tensor_set_f64(t, i, 2);
        else if (dt != PST_STRING)
            pst_tensor_set_f64(t, i, s.rank == 0 ? batch : (double)(i % 2));
    }
    /* tf.sparse_placeholder's parts: indices (int64 [?, R]) one value per batch entry at
     * (b, 0, ...), values (a vector of batch elements, as above) and a dense shape (int64 [R])
     * of [batch, 1, ...] that holds them. */
    int64_t *p = dt == PST_INT64 ? pst_tensor_i64(t) : NULL;
    if (p && s.rank == 2 && pst_output_shape(ph).dims[0] < 0)
        for (int64_t i = 0; i < t->n; i++) p[i] = i % s.dims[1] == 0 ? i / s.dims[1] : 0;
    if (p && s.rank == 1 && s.dims[0] >= 2 && s.dims[0] <= PST_MAX_RANK)
        for (int64_t i = 0; i < t->n; i++) p[i] = i == 0 ? batch : 1;
    return t;
}
