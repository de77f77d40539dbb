/* imported_model: a TensorFlow user's graph trained by the distributed worker (see
 * imported_model.h). */
#include "imported_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "bundle.h"
#include "dist_run.h"
#include "imported.h"
#include "op.h"
#include "ops_state.h"
#include "optimizer.h"
#include "task.h"
#include "task_client.h"
#include "tf_data.h"
#include "tfrecord.h"

/* Whether the train op already moves the global step (TF's minimize(global_step=...) adds an
 * AssignAdd on it under the train op). */
static int increments(pst_graph *g, pst_node *train, pst_node *gs) {
    char *need = pst_imported_ancestors(g, &train, 1);
    int found = 0;
    for (int i = 0; i < pst_graph_num_nodes(g) && !found; i++) {
        pst_node *n = pst_graph_node(g, i);
        found = need[i] && n->n_inputs > 0 && n->inputs[0].node == gs &&
                (strcmp(n->op->name, "AssignAdd") == 0 ||
                 strcmp(n->op->name, "AssignAddVariableOp") == 0);
    }
    free(need);
    return found;
}

int pst_worker_build_imported_model(const pst_train_flags *f, model *m, pst_imported_model *im,
                                    pst_device_fn device_fn, void *device_ctx, pst_status *st) {
    memset(m, 0, sizeof *m);
    memset(im, 0, sizeof *im);
    if (strcmp(f->sync, "async") != 0)
        return pst_status_set(st, PST_E_INVALID, "--meta %s: --mode %s: an imported graph holds "
                              "its own optimizer ops and trains asynchronously (--mode async)",
                              f->meta, f->sync);
    pst_imported_opts o = {.device_fn = device_fn, .device_ctx = device_ctx, .clear_devices = 1,
                           .no_session = 1};
    if (!(im->imp = pst_imported_load_ex(f->meta, &o, st))) return st->code;
    pst_graph *g = m->g = pst_imported_graph(im->imp);
    pst_graph_set_device_fn(g, device_fn, device_ctx); /* what is added below goes there too */
    pst_node *train = pst_imported_train_op(im->imp, f->train_op, st);
    if (!train) return st->code;
    m->loss = f->loss ? pst_graph_output_by_name(g, f->loss) : pst_imported_loss(im->imp, train);
    if (!m->loss.node)
        return pst_status_set(st, PST_E_NOT_FOUND, f->loss ? "--loss '%s' is not in %s"
                              : "%s%s: no loss found for the train op: name it with --loss",
                              f->loss ? f->loss : "", f->meta);
    pst_dtype ld = pst_output_dtype(m->loss);
    if ((ld != PST_FLOAT && ld != PST_DOUBLE) || pst_output_shape(m->loss).rank > 0)
        return pst_status_set(st, PST_E_INVALID, "--meta %s: the loss '%s' is not a float "
                              "scalar: name the scalar loss with --loss", f->meta,
                              m->loss.node->name);
    /* The global step: the graph's, else one on a PS (as tf.train.get_or_create_global_step). */
    int ngs = 0;
    pst_graph_collection(g, "global_step", &ngs);
    if (ngs == 0 && pst_graph_find(g, "global_step") &&
        (pst_graph_find(g, "global_step")->op->flags & PST_OP_VARIABLE)) {
        pst_graph_add_to_collection(g, "global_step", pst_out(pst_graph_find(g, "global_step"), 0));
        ngs = 1;
    }
    im->added_step = ngs == 0;
    m->global_step = pst_train_global_step(g);
    im->global_step = m->global_step.node;
    pst_dtype gd = pst_output_dtype(m->global_step);
    if (gd != PST_INT64 && gd != PST_INT32)
        return pst_status_set(st, PST_E_INVALID, "--meta %s: its global step '%s' is not an "
                              "integer", f->meta, m->global_step.node->name);
    pst_node *step_op = train;
    if (!increments(g, train, m->global_step.node)) {
        im->added_increment = 1;
        pst_graph_push_control_deps(g, 1, &train);
        pst_graph_push_device(g, m->global_step.node->device);
        pst_output inc = pst_assign_add(g, m->global_step, pst_const_scalar(g, gd, 1,
                                        "pstrain/global_step_one"), "pstrain/global_step_increment");
        pst_graph_pop_device(g);
        pst_graph_pop_control_deps(g);
        step_op = inc.node;
    }
    m->train_op = step_op;
    /* Every variable's initializer in one op but the global step's: the chief sets the step
     * last (pst_imported_model_set_step), after any values from a TF checkpoint, so the other
     * workers (who wait until every variable is initialized) never train on a model that is
     * still being filled. */
    pst_node **init = NULL;
    int n_init = 0, k = 0;
    if (pst_imported_initializers(im->imp, &init, &n_init, st) < 0) return st->code;
    for (int i = 0; i < n_init; i++)
        if (init[i]->inputs[0].node != m->global_step.node) init[k++] = init[i];
    m->init = pst_group(g, k, init, "pstrain/init_all");
    free(init);
    im->step_value = pst_placeholder(g, "pstrain/global_step_value", gd, pst_shape_scalar());
    pst_graph_push_device(g, m->global_step.node->device); /* with its variable, as TF places it */
    im->set_step = pst_assign(g, m->global_step, im->step_value, "pstrain/global_step_set").node;
    pst_graph_pop_device(g);
    if (pst_graph_error(g)) {
        *st = *pst_graph_status(g);
        return st->code;
    }
    return 0;
}

int pst_imported_model_load_feeds(const pst_train_flags *f, model *m, pst_imported_model *im,
                                  pst_status *st) {
    pst_graph *g = m->g;
    /* a graph reading its own input may need no feed */
    if (f->n_feeds == 0 && !pst_imported_model_reads_input(im, m))
        return pst_status_set(st, PST_E_INVALID, "--meta %s: give its placeholders' data with "
                              "--feed PLACEHOLDER=FILE.tfrecord:FEATURE (job file: \"feeds\")",
                              f->meta);
    for (int i = 0; i < f->n_feeds; i++) {
        if (pst_record_feed_parse(f->feeds[i], &im->feeds[i], st) < 0) return st->code;
        im->n_feeds = i + 1;
        if (pst_record_feed_load(g, &im->feeds[i], st) < 0) return st->code;
    }
    pst_node *targets[2] = {m->train_op, m->loss.node};
    if (pst_record_feeds_cover(im->imp, targets, 2, im->feeds, im->n_feeds, st) < 0) {
        pst_status_prefix(st, "--meta %s: ", f->meta);
        return st->code;
    }
    return 0;
}

int64_t pst_imported_model_records(const pst_imported_model *im) {
    int64_t n = -1;
    for (int i = 0; i < im->n_feeds; i++) {
        int64_t c = pst_record_feed_count(&im->feeds[i]);
        if (n < 0 || c < n) n = c;
    }
    return n < 0 ? 0 : n;
}

int pst_imported_model_feeds(pst_imported_model *im, const int64_t *rows, int b, pst_feed *out,
                             pst_status *st) {
    for (int i = 0; i < im->n_feeds; i++) {
        if (pst_record_feed_batch(&im->feeds[i], rows, b, st) < 0) return st->code;
        out[i] = (pst_feed){im->feeds[i].ph, im->feeds[i].batch};
    }
    return 0;
}

int pst_imported_model_push_checkpoint(pst_imported_model *im, pst_graph *g, pst_task *t,
                                       const char *prefix, int *n, int64_t *step,
                                       pst_status *st) {
    *n = 0;
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, st);
    if (!r) {
        pst_status_prefix(st, "--init-checkpoint: ");
        return st->code;
    }
    int rc = 0;
    for (int i = 0; i < pst_graph_num_nodes(g) && rc == 0; i++) {
        pst_node *v = pst_graph_node(g, i);
        if (!(v->op->flags & PST_OP_VARIABLE) || !pst_bundle_reader_find(r, v->name)) continue;
        if (im && v == im->global_step) {
            /* set last, by pst_imported_model_set_step */
            pst_tensor *x = pst_bundle_reader_read(r, v->name, st);
            if (!x) {
                pst_status_prefix(st, "--init-checkpoint: ");
                rc = st->code;
                break;
            }
            if (x->n == 1) *step = (int64_t)pst_tensor_get_f64(x, 0);
            pst_tensor_unref(x);
            continue;
        }
        pst_tensor *x = pst_bundle_reader_read(r, v->name, st);
        if (!x) {
            pst_status_prefix(st, "--init-checkpoint: ");
            rc = st->code;
            break;
        }
        pst_shape want = v->out_shapes[0];
        if (x->dtype != v->out_dtypes[0] || !pst_shape_equal(&x->shape, &want)) {
            rc = pst_status_set(st, PST_E_INVALID, "--init-checkpoint %s: variable '%s' there "
                                "does not match the graph's dtype and shape", prefix, v->name);
        } else if ((rc = pst_task_client_push_variable(t, v->device, v->name, x, st)) == 0) {
            (*n)++;
        }
        pst_tensor_unref(x);
    }
    pst_bundle_reader_free(r);
    return rc;
}

int pst_imported_model_set_step(pst_imported_model *im, pst_task *t, pst_graph *g,
                                int64_t step, pst_status *st) {
    pst_dist_run *r = pst_dist_run_new(t, g, 0, NULL, 1, &im->set_step, st);
    if (!r) return st->code;
    pst_tensor *v = pst_tensor_new(pst_output_dtype(im->step_value), pst_shape_scalar(), st);
    int rc = v ? 0 : st->code;
    if (v) {
        pst_tensor_set_f64(v, 0, (double)step);
        pst_feed f = {im->step_value, v};
        rc = pst_dist_run_step(r, &f, 1, NULL, st);
    }
    pst_tensor_unref(v);
    pst_dist_run_free(r);
    return rc;
}

/* ---- a graph that reads its own input ---- */

/* One signature of input ops (an enqueue op, a queue's close op, the iterators' initializers)
 * run as distributed steps. */
struct pst_imported_model_run {
    pst_node **targets;
    int n_targets;
    pst_dist_run *r;
};

static int is_input_op(const pst_node *n) {
    return strncmp(n->op->name, "QueueDequeue", 12) == 0 ||
           strncmp(n->op->name, "IteratorGetNext", 15) == 0;
}

int pst_imported_model_reads_input(pst_imported_model *im, model *m) {
    pst_node *targets[2] = {m->train_op, m->loss.node};
    return pst_imported_uses_queues(im->imp, targets, 2) ||
           pst_imported_uses_datasets(im->imp, targets, 2);
}

/* The imported graph's runner: its input ops as distributed steps of this task (made once per
 * signature; the queue runner threads call this at once). */
static int run_input_ops(void *ctx, const pst_feed *feeds, int n_feeds, pst_node *const *targets,
                         int n_targets, pst_status *st) {
    pst_imported_model *im = ctx;
    pst_dist_run *r = NULL;
    pthread_mutex_lock(&im->runs_mu);
    for (int i = 0; i < im->n_runs && !r; i++)
        if (im->runs[i].n_targets == n_targets &&
            memcmp(im->runs[i].targets, targets, (size_t)n_targets * sizeof *targets) == 0)
            r = im->runs[i].r;
    if (!r) {
        struct pst_imported_model_run *rs = realloc(im->runs, (size_t)(im->n_runs + 1) * sizeof *rs);
        pst_node **tc = malloc((size_t)n_targets * sizeof *tc + 1);
        if (rs) im->runs = rs;
        if (!rs || !tc) {
            free(tc);
            pthread_mutex_unlock(&im->runs_mu);
            return pst_status_set(st, PST_E_EXHAUSTED, "out of memory for an input op's run");
        }
        memcpy(tc, targets, (size_t)n_targets * sizeof *tc);
        r = pst_dist_run_new(im->task, pst_imported_graph(im->imp), 0, NULL, n_targets, targets,
                             st);
        if (r) im->runs[im->n_runs++] = (struct pst_imported_model_run){tc, n_targets, r};
        else free(tc);
    }
    pthread_mutex_unlock(&im->runs_mu);
    if (!r) return st->code;
    return pst_dist_run_step(r, feeds, n_feeds, NULL, st);
}

/* This worker's share of records (every workers-th record from index) in a temporary file
 * (path in out); out stays empty when the file has fewer records than workers. */
static int write_share(const char *records, int index, int workers, char *out, size_t len,
                       int64_t *total, int64_t *mine, pst_status *st) {
    out[0] = '\0';
    if (pst_tfrecord_count(records, NULL, total, st) < 0) {
        pst_status_prefix(st, "--records: ");
        return st->code;
    }
    *mine = *total;
    if (workers <= 1 || *total < workers) return 0;
    const char *tmp = getenv("TMPDIR");
    snprintf(out, len, "%s/pstrain-records-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    int fd = mkstemp(out);
    if (fd < 0) {
        int rc = pst_status_set(st, PST_E_IO, "--records: cannot create a temporary file for "
                                "this worker's share of %s", records);
        out[0] = '\0';
        return rc;
    }
    close(fd);
    pst_tfrecord_reader *rd = pst_tfrecord_reader_open(records, NULL, st);
    pst_tfrecord_writer *w = rd ? pst_tfrecord_writer_open(out, NULL, st) : NULL;
    int rc = w ? 0 : st->code;
    *mine = 0;
    for (int64_t i = 0; rc == 0; i++) {
        const uint8_t *data;
        size_t n;
        int k = pst_tfrecord_reader_next(rd, &data, &n, st);
        if (k <= 0) {
            rc = k;
            break;
        }
        if (i % workers != index) continue;
        rc = pst_tfrecord_writer_write(w, data, n, st);
        (*mine)++;
    }
    if (w && rc == 0) rc = pst_tfrecord_writer_close(w, st);
    else pst_tfrecord_writer_abort(w);
    pst_tfrecord_reader_free(rd);
    if (rc < 0) {
        pst_status_prefix(st, "--records: ");
        unlink(out);
        out[0] = '\0';
    }
    return rc;
}

int pst_imported_model_start_input(const pst_train_flags *f, model *m, pst_imported_model *im,
                                   pst_task *t, int index, int workers, char *what, size_t len,
                                   pst_status *st) {
    pst_imported *imp = im->imp;
    pst_graph *g = m->g;
    pst_node *targets[2] = {m->train_op, m->loss.node};
    im->task = t;
    pthread_mutex_init(&im->runs_mu, NULL);
    pst_imported_set_runner(imp, run_input_ops, im, pst_task_vars(t));
    im->reads_queues = pst_imported_uses_queues(imp, targets, 2);
    im->reads_datasets = pst_imported_uses_datasets(imp, targets, 2);
    /* what the step reads: every output of its dequeues and IteratorGetNexts */
    char *need = pst_imported_ancestors(g, targets, 2);
    int total = 0;
    for (int i = 0; i < pst_graph_num_nodes(g); i++)
        if (need[i] && is_input_op(pst_graph_node(g, i))) total += pst_graph_node(g, i)->n_outputs;
    if (total > PST_MAX_FEEDS - f->n_feeds) {
        free(need);
        return pst_status_set(st, PST_E_INVALID, "--meta %s: its train op reads %d input "
                              "tensors (at most %d)", f->meta, total, PST_MAX_FEEDS - f->n_feeds);
    }
    im->inputs = calloc((size_t)total + 1, sizeof *im->inputs);
    if (!im->inputs) {
        free(need);
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    }
    for (int i = 0; i < pst_graph_num_nodes(g); i++) {
        pst_node *n = pst_graph_node(g, i);
        if (!need[i] || !is_input_op(n)) continue;
        for (int k = 0; k < n->n_outputs; k++) im->inputs[im->n_inputs++] = pst_out(n, k);
    }
    free(need);
    if (!(im->input_run = pst_dist_run_new(t, g, im->n_inputs, im->inputs, 0, NULL, st)))
        return st->code;
    int64_t all = 0, mine = 0;
    const char *path = f->records;
    if (path && write_share(path, index, workers, im->shard, sizeof im->shard, &all, &mine, st) < 0)
        return st->code;
    if (im->shard[0]) path = im->shard;
    int n = 0;
    if (f->records)
        n = snprintf(what, len, "reading %lld of the %lld records of %s", (long long)mine,
                     (long long)all, f->records);
    else
        n = snprintf(what, len, "reading the files the graph names");
    if (im->reads_datasets) {
        pst_imported_dataset_input *din = calloc(1, sizeof *din);
        if (!din) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        im->din = din;
        if (pst_imported_dataset_inputs(imp, targets, 2, path, 0, din, st) < 0 ||
            pst_imported_run_dataset_inits(imp, din, st) < 0)
            return st->code;
        if (n >= 0 && (size_t)n < len)
            n += snprintf(what + n, len - (size_t)n, "; %d tf.data iterators initialized",
                          din->n_inits);
    }
    if (im->reads_queues) {
        pst_feed *files = NULL;
        int nfiles = 0;
        if (path && pst_imported_reader_files(imp, path, &files, &nfiles, st) < 0) return st->code;
        int rc = pst_imported_start_queue_runners(imp, files, nfiles, st);
        for (int i = 0; i < nfiles; i++) pst_tensor_unref(files[i].value);
        free(files);
        if (rc < 0) return rc;
        if (n >= 0 && (size_t)n < len)
            snprintf(what + n, len - (size_t)n, "; %d queue runners started",
                     pst_imported_num_queue_runners(imp));
    }
    return 0;
}

int pst_imported_model_next_input(pst_imported_model *im, pst_feed *out, int max, int *n,
                                  pst_status *st) {
    *n = 0;
    if (im->n_inputs > max) return pst_status_set(st, PST_E_INVALID, "too many input tensors");
    pst_imported_dataset_input *din = im->din;
    pst_tensor *v[PST_MAX_FEEDS] = {0};
    if (pst_dist_run_step(im->input_run, din ? din->handles : NULL, din ? din->n_handles : 0, v,
                          st) < 0)
        return st->code;
    for (int i = 0; i < im->n_inputs; i++) out[i] = (pst_feed){im->inputs[i], v[i]};
    *n = im->n_inputs;
    return 0;
}

int pst_imported_model_stop_input(pst_imported_model *im, pst_status *st) {
    return im->imp ? pst_imported_stop_queue_runners(im->imp, st) : 0;
}

void pst_imported_model_destroy(pst_imported_model *im, model *m) {
    pst_status ignored = {0};
    pst_imported_model_stop_input(im, &ignored);
    for (int i = 0; i < im->n_runs; i++) {
        pst_dist_run_free(im->runs[i].r);
        free(im->runs[i].targets);
    }
    free(im->runs);
    if (im->task) pthread_mutex_destroy(&im->runs_mu);
    im->runs = NULL;
    im->n_runs = 0;
    pst_dist_run_free(im->input_run);
    im->input_run = NULL;
    if (im->din) pst_imported_dataset_input_free(im->din);
    free(im->din);
    im->din = NULL;
    free(im->inputs);
    im->inputs = NULL;
    im->n_inputs = 0;
    /* the iterators' datasets run functions of the graph freed below */
    if (im->task && im->reads_datasets)
        pst_var_store_drop_resources(pst_task_vars(im->task), PST_TF_DATA_ITERATOR_KEY);
    if (im->shard[0]) unlink(im->shard);
    im->shard[0] = '\0';
    if (im->imp) pst_imported_set_runner(im->imp, NULL, NULL, NULL);
    for (int i = 0; i < im->n_feeds; i++) pst_record_feed_destroy(&im->feeds[i]);
    im->n_feeds = 0;
    pst_imported_free(im->imp); /* and its graph */
    im->imp = NULL;
    if (m) m->g = NULL;
}
