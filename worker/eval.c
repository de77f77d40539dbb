/* eval: the evaluation loop (see eval.h). */
#include "eval.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "dataset.h"
#include "events.h"
#include "fashion_mnist.h"
#include "file.h"
#include "model.h"
#include "nets.h"
#include "saver.h"
#include "ops_state.h"

/* Whether a launched run is still going (its state.json says running or stopping). */
static int run_going(const char *run) {
    char path[4096];
    snprintf(path, sizeof path, "%s/state.json", run);
    uint8_t *buf = NULL;
    size_t len = 0;
    pst_status st = {0};
    if (pst_file_read(path, 1 << 20, &buf, &len, &st) < 0) return 1; /* not written yet */
    cJSON *j = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "status");
    int going = !cJSON_IsString(s) || strcmp(s->valuestring, "running") == 0 ||
                strcmp(s->valuestring, "stopping") == 0 || strcmp(s->valuestring, "starting") == 0;
    cJSON_Delete(j);
    return going;
}

/* Accuracy and mean loss over the test set, in batches of 1000. The loss is the losses
 * collection's first (the model's own, without regularization): m->loss runs the train op. */
static int evaluate(pst_session *s, model *m, const pst_dataset *test, double *acc, double *loss,
                    pst_status *st) {
    int n_losses = 0;
    const pst_output *losses = pst_graph_collection(m->g, PST_LOSSES, &n_losses);
    pst_dataset_iter_opts io = {.batch = 1000};
    pst_dataset_iter *it = pst_dataset_iter_new(test, &io, st);
    if (!it) return st->code;
    pst_tensor *no = pst_tensor_scalar_bool(0), *x, *y;
    double correct = 0, loss_sum = 0;
    int64_t total = 0, batches = 0;
    int rc;
    while ((rc = pst_dataset_next(it, &x, &y, st)) == 1) {
        pst_feed f[3] = {{m->images, x}, {m->labels, y}, {m->is_training, no}};
        pst_output fetch[2] = {m->correct, n_losses > 0 ? losses[0] : m->correct};
        pst_tensor *out[2] = {NULL, NULL};
        rc = pst_session_run(s, f, 3, fetch, n_losses > 0 ? 2 : 1, NULL, 0, out, st);
        total += y->n;
        pst_tensor_unref(x);
        pst_tensor_unref(y);
        if (rc < 0) break;
        correct += pst_tensor_f32(out[0])[0];
        if (out[1]) loss_sum += pst_tensor_f32(out[1])[0];
        batches++;
        pst_tensor_unref(out[0]);
        pst_tensor_unref(out[1]);
    }
    pst_tensor_unref(no);
    pst_dataset_iter_free(it);
    *acc = total ? correct / (double)total : 0;
    *loss = batches ? loss_sum / (double)batches : 0;
    return rc < 0 ? rc : 0;
}

/* The variables evaluation needs: the model's (trainable and model variables, e.g. batch norm's
 * moving averages) and the global step, not the optimizer's slots, so a checkpoint of the same
 * model evaluates whatever optimizer trained it. Caller frees; NULL when out of memory. */
static pst_output *model_vars(pst_graph *g, pst_output global_step, int *n) {
    int nt = 0, nm = 0;
    const pst_output *t = pst_graph_collection(g, PST_TRAINABLE_VARIABLES, &nt);
    const pst_output *mv = pst_graph_collection(g, PST_MODEL_VARIABLES, &nm);
    pst_output *v = calloc((size_t)(nt + nm + 1), sizeof *v);
    if (!v) return NULL;
    int k = 0;
    for (int i = 0; i < nt + nm; i++) {
        pst_output o = i < nt ? t[i] : mv[i - nt];
        int dup = 0;
        for (int j = 0; j < k; j++) dup |= v[j].node == o.node;
        if (!dup) v[k++] = o;
    }
    v[k++] = global_step;
    *n = k;
    return v;
}

/* Whether prefix is in the list of those evaluated already. */
static int seen(char **done, int n, const char *prefix) {
    for (int i = 0; i < n; i++)
        if (strcmp(done[i], prefix) == 0) return 1;
    return 0;
}

int pst_worker_eval_loop(const pst_train_flags *f, const pst_eval_opts *o, FILE *out,
                         pst_status *st) {
    if (!o->checkpoint_dir || !o->checkpoint_dir[0])
        return pst_status_set(st, PST_E_INVALID, "--checkpoint-dir: the directory to watch is "
                              "required");
    const pst_net_def *net = pst_net_lookup(f->model);
    if (!net) return pst_status_set(st, PST_E_INVALID, "--model: unknown model '%s'", f->model);
    double interval = o->interval_secs > 0 ? o->interval_secs : 1;
    pst_tensor *te_x = NULL, *te_y = NULL;
    pst_dataset *test = NULL;
    model m = {0};
    pst_session *s = NULL;
    pst_saver *saver = NULL;
    pst_events_writer *ev = NULL;
    char **done = NULL;
    pst_output *vars = NULL;
    int n_done = 0, rc = 0, n_vars = 0;
    if (pst_fashion_mnist_load_format(f->data_dir, "test", f->data_format, &te_x, &te_y, st) < 0 ||
        !(test = pst_dataset_new(te_x, te_y, st)) ||
        pst_worker_build_model(f, net, &m, NULL, NULL, st) < 0 ||
        !(s = pst_session_new(m.g, NULL, st)) ||
        !(vars = model_vars(m.g, m.global_step, &n_vars)) ||
        !(saver = pst_saver_new(m.g, &(pst_saver_opts){.n_vars = n_vars, .vars = vars}, st)) ||
        (o->events_dir && !(ev = pst_events_writer_open(o->events_dir, ".eval", st)))) {
        rc = st->code;
        goto out;
    }
    fprintf(out, "pstrain eval: %s on the test set (%lld examples), watching %s\n", net->name,
            (long long)pst_dataset_size(test), o->checkpoint_dir);
    fflush(out);
    double last_new = pst_clock_now();
    for (;;) {
        int ended = o->run_dir && !run_going(o->run_dir); /* before listing: none comes later */
        char **paths = NULL;
        int n = pst_checkpoint_list(o->checkpoint_dir, &paths, st);
        if (n < 0) {
            rc = st->code;
            goto out;
        }
        for (int i = 0; i < n && rc == 0; i++) {
            if (seen(done, n_done, paths[i])) continue;
            /* the newest may be being replaced as it is read: a failed restore of a checkpoint
             * that then disappears is skipped, one that stays is an error */
            if (pst_saver_restore(saver, s, paths[i], st) < 0) {
                char idx[4200];
                snprintf(idx, sizeof idx, "%s.index", paths[i]);
                if (access(idx, F_OK) == 0) {
                    pst_status_prefix(st, "checkpoint %s: ", paths[i]);
                    rc = st->code;
                    break;
                }
                memset(st, 0, sizeof *st);
                continue;
            }
            pst_tensor *gs = pst_session_run1(s, pst_variable_value(m.global_step), st);
            int64_t step = gs ? pst_tensor_i64(gs)[0] : -1;
            pst_tensor_unref(gs);
            double acc = 0, loss = 0;
            if (evaluate(s, &m, test, &acc, &loss, st) < 0) {
                pst_status_prefix(st, "evaluating %s: ", paths[i]);
                rc = st->code;
                break;
            }
            fprintf(out, "eval %s: global step %lld, accuracy %.4f, loss %.4f\n", paths[i],
                    (long long)step, acc, loss);
            fflush(out);
            if (ev && (pst_events_add_scalar(ev, "eval/accuracy", (float)acc, step, st) < 0 ||
                       pst_events_add_scalar(ev, "eval/loss", (float)loss, step, st) < 0 ||
                       pst_events_flush(ev, st) < 0)) {
                rc = st->code;
                break;
            }
            char **nd = realloc(done, (size_t)(n_done + 1) * sizeof *nd);
            if (!nd || !(nd[n_done] = strdup(paths[i]))) {
                if (nd) done = nd;
                rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
                break;
            }
            done = nd;
            n_done++;
            last_new = pst_clock_now();
            if (o->max_evals > 0 && n_done >= o->max_evals) break;
            if (o->last_step > 0 && step >= o->last_step) ended = 1;
        }
        for (int i = 0; i < n; i++) free(paths[i]);
        free(paths);
        if (rc < 0 || (o->max_evals > 0 && n_done >= o->max_evals) || ended) break;
        if (o->timeout_secs > 0 && pst_clock_now() - last_new > o->timeout_secs) {
            fprintf(out, "pstrain eval: no new checkpoint for %.0f s\n", o->timeout_secs);
            break;
        }
        usleep((useconds_t)(interval * 1e6));
    }
out:
    if (ev) {
        pst_status cst = {0};
        pst_events_writer_close(ev, &cst);
    }
    for (int i = 0; i < n_done; i++) free(done[i]);
    free(done);
    pst_saver_free(saver);
    free(vars);
    pst_session_free(s);
    pst_graph_free(m.g);
    pst_dataset_free(test);
    pst_tensor_unref(te_x);
    pst_tensor_unref(te_y);
    return rc < 0 ? rc : n_done;
}
