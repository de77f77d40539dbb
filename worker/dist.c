/* dist: pstrain-worker in a cluster (see dist.h). */
#include "dist.h"

#include <cblas.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "dataset.h"
#include "device.h"
#include "dist_ops.h"
#include "dist_run.h"
#include "dist_save.h"
#include "idx.h"
#include "model.h"
#include "op.h"
#include "ops.h"
#include "parallel.h"
#include "ps_vars.h"
#include "readiness.h"
#include "task.h"
#include "task_client.h"
#include "train_loop.h"
#include "replica_setter.h"
#include "fashion_mnist.h"
#include "file.h"
#include "clock.h"

int pst_worker_is_distributed(const pst_train_flags *f) {
    const char *tf = getenv("TF_CONFIG");
    return f->cluster != NULL || (tf && tf[0]);
}

/* Places the ops of one name scope on another device (model parallelism), everything else by
 * the replica device setter. */
typedef struct placer {
    pst_replica_setter *rs;
    char scope[256];
    char device[PST_DEVICE_MAX];
} placer;

static void place(void *ctx, const pst_node *node, const char *requested, char *out) {
    placer *p = ctx;
    pst_replica_setter_fn(p->rs, node, requested, out);
    size_t l = strlen(p->scope);
    if (l && strncmp(node->name, p->scope, l) == 0 && node->name[l] == '/' &&
        !(node->op->flags & PST_OP_VARIABLE) && strncmp(out, "/job:ps", 7) != 0)
        snprintf(out, PST_DEVICE_MAX, "%s", p->device);
}

/* ---- the worker ---- */

typedef struct dist {
    const pst_train_flags *f;
    const char *net_name;
    pst_cluster *c;
    int index, n_workers, n_ps, chief;
    pst_task *t;
    model m;
    placer pl;
    pst_ps_vars pv;
    pst_dist_run *init, *train, *eval;
    pst_dist_save *saver;
} dist;

static int save_ckpt(dist *d, int64_t step, pst_status *st) {
    char prefix[4096];
    int rc = pst_dist_save_write(d->saver, step, prefix, sizeof prefix, st);
    if (rc == 0 && !d->f->quiet) printf("saved %s (every PS wrote its shard)\n", prefix);
    fflush(stdout);
    return rc;
}

/* One evaluation batch through the registered partitions. */
static int dist_eval(void *ctx, const pst_feed *feeds, int n, pst_tensor **out, pst_status *st) {
    return pst_dist_run_step(((dist *)ctx)->eval, feeds, n, out, st);
}

static int run_eval(dist *d, const pst_dataset *ds, double *acc, pst_status *st) {
    return pst_worker_accuracy(&d->m, ds, dist_eval, d, acc, st);
}

/* Chief: restore the latest checkpoint, or keep what the PS already hold, or initialize. */
static int chief_prepare(dist *d, int64_t *first_step, pst_status *st) {
    *first_step = 0;
    pst_readiness_result res;
    if (pst_readiness_prepare(d->t, &d->pv, d->f->checkpoint_dir, d->init, &res, st) < 0)
        return st->code;
    if (res.warning[0]) fprintf(stderr, "pstrain-worker: warning: %s\n", res.warning);
    if (res.how == PST_READY_RESTORED) printf("restored %s onto %d PS\n", res.checkpoint, d->n_ps);
    if (res.how == PST_READY_KEPT) printf("the PS already hold every variable: continuing from them\n");
    return res.how == PST_READY_INITIALIZED ? 0 : 1;
}

static void ready_progress(void *ctx, int ready, int total, const char *missing) {
    dist *d = ctx;
    fprintf(stderr, "%s: waiting for the chief to initialize the model (%d of %d variables ready; "
            "waiting for %s)\n", pst_task_device(d->t), ready, total, missing);
}

/* Non-chief: wait until every variable is initialized on its PS. */
static int wait_ready(dist *d, pst_status *st) {
    return pst_readiness_wait(d->t, &d->pv, d->f->ready_timeout_ms, ready_progress, d, st);
}

static void say_done_all(dist *d, int failed, const char *reason) {
    const char *jobs[2] = {"ps", "worker"};
    for (int j = 0; j < 2; j++)
        for (int k = 0; k < pst_cluster_num_tasks(d->c, jobs[j]); k++) {
            if (j == 1 && (!d->chief || k == d->index)) continue; /* the chief ends servers */
            char dev[64];
            snprintf(dev, sizeof dev, "/job:%s/task:%d", jobs[j], k);
            pst_status ignore = {0};
            pst_task_client_say_done(d->t, dev, failed, reason, &ignore);
        }
}

static int train(dist *d, pst_status *st) {
    const pst_train_flags *f = d->f;
    pst_tensor *tr_x = NULL, *tr_y = NULL, *te_x = NULL, *te_y = NULL;
    pst_dataset *all = NULL, *trn = NULL, *val = NULL, *test = NULL, *mine = NULL;
    pst_dataset_iter *it = NULL;
    int rc = 0;
    if ((rc = pst_fashion_mnist_load_raw(f->data_dir, "train", &tr_x, &tr_y, st)) < 0 ||
        (rc = pst_fashion_mnist_load_raw(f->data_dir, "test", &te_x, &te_y, st)) < 0)
        goto out;
    all = pst_dataset_new(tr_x, tr_y, st);
    test = pst_dataset_new(te_x, te_y, st);
    if (!all || !test) {
        rc = st->code;
        goto out;
    }
    int64_t n_val = f->validation < pst_dataset_size(all) ? f->validation : 0;
    if ((rc = pst_dataset_split(all, pst_dataset_size(all) - n_val, &trn, &val, st)) < 0) goto out;
    /* Each worker reads its own shard: example i goes to worker i % workers. */
    if (!(mine = pst_dataset_shard(trn, d->index, d->n_workers, st))) {
        rc = st->code;
        goto out;
    }
    int64_t first_step = 0;
    if (d->chief) {
        rc = chief_prepare(d, &first_step, st);
        if (rc < 0) goto out;
        rc = 0;
    } else if ((rc = wait_ready(d, st)) < 0) {
        goto out;
    }
    {
        /* Where the job stands: the global step as its PS holds it (a restored job resumes). */
        pst_tensor *gs = pst_task_client_pull_variable(d->t, d->m.global_step.node->device,
                                                       d->m.global_step.node->name, st);
        if (!gs) {
            rc = st->code;
            goto out;
        }
        first_step = pst_tensor_i64(gs)[0];
        pst_tensor_unref(gs);
        if (first_step > 0) printf("%s: resuming at global step %lld\n", pst_task_device(d->t),
                                   (long long)first_step);
    }
    pst_dataset_iter_opts io = {.batch = f->batch,
                                .shuffle_buffer = f->no_shuffle ? 0 : pst_dataset_size(mine),
                                .seed = (uint64_t)f->seed + (uint64_t)d->index,
                                .repeat = -1, .prefetch = 2, .drop_remainder = 1};
    if (!(it = pst_dataset_iter_new(mine, &io, st))) {
        rc = st->code;
        goto out;
    }
    printf("%s: %s %s training, %lld examples in this worker's shard, batch %d, %s lr %g, "
           "until global step %lld\n", pst_task_device(d->t), d->net_name, f->sync,
           (long long)pst_dataset_size(mine), f->batch, f->optimizer, f->lr, (long long)f->steps);
    fflush(stdout);
    int64_t gstep = first_step, local = 0, every = f->save_every_steps;
    int64_t next_save = every > 0 ? (first_step / every + 1) * every : INT64_MAX;
    double t0 = pst_clock_now(), last_print = t0, last_save_time = t0;
    int64_t last_saved = -1;
    float loss = 0;
    while (gstep < f->steps) {
        pst_tensor *x = NULL, *y = NULL;
        int r = pst_dataset_next(it, &x, &y, st);
        if (r <= 0) {
            rc = r < 0 ? r : pst_status_set(st, PST_E_OUT_OF_RANGE, "the training data ran out");
            break;
        }
        pst_feed feeds[2] = {{d->m.images, x}, {d->m.labels, y}};
        pst_tensor *out[2] = {0};
        rc = pst_dist_run_step(d->train, feeds, 2, out, st);
        pst_tensor_unref(x);
        pst_tensor_unref(y);
        if (rc < 0) break;
        loss = pst_tensor_f32(out[0])[0];
        gstep = pst_tensor_i64(out[1])[0] + 1; /* read before this step's increment */
        pst_tensor_unref(out[0]);
        pst_tensor_unref(out[1]);
        local++;
        double now = pst_clock_now();
        if (!f->quiet && (now - last_print >= 2 || gstep >= f->steps)) {
            printf("%s: global step %lld, local step %lld, loss %.4f, %.0f examples/s\n",
                   pst_task_device(d->t), (long long)gstep, (long long)local, loss,
                   (double)local * f->batch / (now - t0));
            fflush(stdout);
            last_print = now;
        }
        if (d->chief && n_val > 0 && f->eval_every > 0 && local % f->eval_every == 0) {
            double vacc = 0;
            if ((rc = run_eval(d, val, &vacc, st)) < 0) break;
            printf("%s: global step %lld: validation_accuracy=%.4f\n", pst_task_device(d->t),
                   (long long)gstep, vacc);
            fflush(stdout);
        }
        if (d->chief && d->saver &&
            (gstep >= next_save ||
             (f->save_every_secs > 0 && now - last_save_time >= (double)f->save_every_secs))) {
            if ((rc = save_ckpt(d, gstep, st)) < 0) break;
            if (every > 0) next_save = (gstep / every + 1) * every;
            last_save_time = now;
            last_saved = gstep;
        }
    }
    double secs = pst_clock_now() - t0;
    /* and on a clean end (unless this very step was just saved) */
    if (rc == 0 && d->chief && d->saver && gstep != last_saved && (rc = save_ckpt(d, gstep, st)) < 0)
        goto out;
    if (rc == 0) {
        double acc = 0;
        if ((rc = run_eval(d, test, &acc, st)) < 0) goto out;
        printf("%s: trained %lld local steps in %.1f s (%.0f examples/s), global step %lld, "
               "final loss %.4f\n", pst_task_device(d->t), (long long)local, secs,
               secs > 0 ? (double)local * f->batch / secs : 0, (long long)gstep, loss);
        printf("test_accuracy=%.4f\n", acc);
    }
out:
    pst_dataset_iter_free(it);
    pst_dataset_free(mine);
    pst_dataset_free(all);
    pst_dataset_free(trn);
    pst_dataset_free(val);
    pst_dataset_free(test);
    pst_tensor_unref(tr_x);
    pst_tensor_unref(tr_y);
    pst_tensor_unref(te_x);
    pst_tensor_unref(te_y);
    return rc;
}

static void print_status(dist *d) {
    const char *jobs[2] = {"ps", "worker"};
    for (int j = 0; j < 2; j++)
        for (int k = 0; k < pst_cluster_num_tasks(d->c, jobs[j]); k++) {
            char dev[64];
            snprintf(dev, sizeof dev, "/job:%s/task:%d", jobs[j], k);
            pst_status st = {0};
            pst_task_status_report r;
            char *s = NULL;
            if (pst_task_client_report(d->t, dev, 0, &r, &st) == 0) {
                s = pst_task_status_text(&r);
                pst_task_status_report_destroy(&r);
                if (!s) pst_status_set(&st, PST_E_EXHAUSTED, "out of memory for its status");
            }
            if (s) {
                fputs(s, stdout);
                free(s);
            } else {
                printf("%s: %s\n", dev, st.msg);
            }
        }
    fflush(stdout);
}

int pst_worker_run_distributed(const pst_train_flags *f, const pst_net_def *net) {
    dist d = {.f = f, .net_name = net->name};
    pst_status st = {0};
    int rc = 1;
    signal(SIGPIPE, SIG_IGN);
    pst_dist_ops_init(); /* synchronous training builds the PstSync ops */
    openblas_set_num_threads(1);
    pst_parallel_set_threads(f->threads);
    if (f->inter_op_threads > 0) pst_session_set_default_inter_op_threads(f->inter_op_threads);
    d.index = f->task;
    if (f->cluster) {
        d.c = pst_cluster_load(f->cluster, &st);
    } else {
        char type[64];
        int index = -1;
        d.c = pst_cluster_from_env("TF_CONFIG", type, sizeof type, &index, &st);
        if (d.c && !f->task_given) {
            if (strcmp(type, "worker") != 0) {
                pst_status_set(&st, PST_E_INVALID, "TF_CONFIG names task type '%s'; "
                               "pstrain-worker runs 'worker' tasks", type);
                goto out;
            }
            d.index = index;
        }
    }
    if (!d.c) goto out;
    if (pst_cluster_check_task(d.c, "worker", d.index, &st) < 0) goto out;
    d.n_workers = pst_cluster_num_tasks(d.c, "worker");
    d.n_ps = pst_cluster_num_tasks(d.c, "ps");
    d.chief = d.index == 0;
    if (d.n_ps == 0) {
        pst_status_set(&st, PST_E_INVALID, "the cluster has no \"ps\" job: variables need a PS");
        goto out;
    }
    pst_task_opts to = {.cluster = d.c, .job = "worker", .index = d.index,
                        .connect_timeout_ms = f->connect_timeout_ms,
                        .recv_timeout_ms = f->recv_timeout_ms, .expected_workers = 1,
                        .quiet = f->quiet};
    if (!(d.t = pst_task_new(&to, &st))) goto out;
    if (f->port_file) {
        char line[32];
        int n = snprintf(line, sizeof line, "%d\n", pst_task_port(d.t));
        if (pst_file_write_atomic(f->port_file, line, (size_t)n, &st) < 0) goto out;
    }
    if (f->serve_only) {
        /* Runs what other workers place here until the chief says the job is done. */
        printf("%s: serving partitions for other workers\n", pst_task_device(d.t));
        fflush(stdout);
        pst_status ws = {0};
        pst_task_wait_shutdown(d.t, 0, &ws);
        say_done_all(&d, 0, NULL);
        rc = 0;
        goto out;
    }
    char wdev[64];
    snprintf(wdev, sizeof wdev, "/job:worker/task:%d", d.index);
    d.pl.rs = pst_replica_setter_new(d.n_ps, wdev,
                                     strcmp(f->placement, "greedy") == 0 ? PST_PLACE_GREEDY
                                                                         : PST_PLACE_ROUND_ROBIN,
                                     &st);
    if (!d.pl.rs) goto out;
    if (f->layer_device) {
        const char *eq = strchr(f->layer_device, '=');
        if (!eq || eq == f->layer_device) {
            pst_status_set(&st, PST_E_INVALID, "--layer-device: '%s' is not SCOPE=DEVICE",
                           f->layer_device);
            goto out;
        }
        snprintf(d.pl.scope, sizeof d.pl.scope, "%.*s", (int)(eq - f->layer_device),
                 f->layer_device);
        if (pst_device_canonical(eq + 1, d.pl.device, sizeof d.pl.device, &st) < 0) goto out;
        if (!pst_cluster_address_of_device(d.c, d.pl.device)) {
            pst_status_set(&st, PST_E_INVALID, "--layer-device: no task %s in the cluster",
                           d.pl.device);
            goto out;
        }
    }
    pst_train_flags mf = *f;
    int sync = strcmp(f->sync, "sync") == 0;
    mf.replicas_to_aggregate = sync ? (f->replicas_to_aggregate > 0 ? f->replicas_to_aggregate
                                                                    : d.n_workers)
                                    : 0;
    if (sync && mf.replicas_to_aggregate > d.n_workers) {
        pst_status_set(&st, PST_E_INVALID, "--replicas-to-aggregate %d: the cluster has only %d "
                       "workers", mf.replicas_to_aggregate, d.n_workers);
        goto out;
    }
    mf.sync_total = sync ? d.n_workers : 0;
    if (mf.partition_min_bytes > 0 && mf.partition_max_parts <= 0) mf.partition_max_parts = d.n_ps;
    if (pst_worker_build_model(&mf, net, &d.m, place, &d.pl, &st) < 0) goto out;
    if (pst_ps_vars_collect(d.m.g, d.n_ps, &d.pv, &st) < 0) goto out;
    pst_output efetch = d.m.correct;
    pst_output tfetch[2] = {d.m.loss, pst_variable_value(d.m.global_step)};
    if (!(d.init = pst_dist_run_new(d.t, d.m.g, 0, NULL, 1, &d.m.init, &st))) goto out;
    if (!(d.train = pst_dist_run_new(d.t, d.m.g, 2, tfetch, 1, &d.m.train_op, &st))) goto out;
    if (!(d.eval = pst_dist_run_new(d.t, d.m.g, 1, &efetch, 0, NULL, &st))) goto out;
    if (d.chief && f->checkpoint_dir) {
        pst_dist_save_opts so = {.dir = f->checkpoint_dir, .max_to_keep = f->max_to_keep};
        if (!(d.saver = pst_dist_save_new(d.t, d.m.g, &d.pv, &so, &st))) goto out;
    }
    rc = train(&d, &st) < 0 ? 1 : 0;
    if (rc == 0 && f->ps_status) print_status(&d);
    say_done_all(&d, rc, rc ? st.msg : NULL);
out:
    if (rc) fprintf(stderr, "pstrain-worker: %s\n", st.msg[0] ? st.msg : "failed");
    pst_dist_save_free(d.saver);
    pst_dist_run_free(d.eval);
    pst_dist_run_free(d.train);
    pst_dist_run_free(d.init);
    pst_ps_vars_destroy(&d.pv);
    pst_graph_free(d.m.g);
    pst_replica_setter_free(d.pl.rs);
    pst_task_free(d.t);
    pst_cluster_free(d.c);
    return rc;
}
