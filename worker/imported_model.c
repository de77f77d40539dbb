/* imported_model: a TensorFlow user's graph trained by the distributed worker (see
 * imported_model.h). */
#include "imported_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "dist_run.h"
#include "imported.h"
#include "op.h"
#include "ops_state.h"
#include "optimizer.h"
#include "task.h"
#include "task_client.h"

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
    if (f->n_feeds == 0)
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

void pst_imported_model_destroy(pst_imported_model *im, model *m) {
    for (int i = 0; i < im->n_feeds; i++) pst_record_feed_destroy(&im->feeds[i]);
    im->n_feeds = 0;
    pst_imported_free(im->imp); /* and its graph */
    im->imp = NULL;
    if (m) m->g = NULL;
}
